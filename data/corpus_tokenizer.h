// TokenizeCorpus: documents (document_reader.h) -> sharded Megatron datasets (shard_manifest.h).
//
// Every document is encoded with the tokenizer (BpeTokenizer::Encode: special-token names in the
// text stay text), followed by the end-of-document token <|endoftext|> unless
// append_end_of_document is false, and stored as one sequence/document. Documents go to shards
// in input order; a shard is closed when its .bin reaches shard_bytes (documents are never
// split across shards). The manifest is written last, after every shard is complete, and an
// old manifest at the same prefix is removed first, so a failed run never looks finished.
//
// Speed: documents are read in batches of ~16 MiB on a reader thread, one batch ahead; each
// batch is cut into parts of at most ~1 MiB (long documents at line starts, where GPT-2's
// pre-tokeniser always splits) and encoded on num_threads threads; the output is identical for
// every thread count.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/bpe_tokenizer.h"
#include "data/document_reader.h"

namespace aoetron::data {

struct TokenizeOptions {
  std::vector<std::string> inputs;
  std::string output_prefix;
  DocumentReaderOptions reader;
  int64_t shard_bytes = int64_t{256} << 20;
  int num_threads = 0;  // 0 = all cores
  bool append_end_of_document = true;
  std::string tokenizer_name;  // recorded in the manifest
};

struct TokenizeReport {
  int64_t documents = 0;
  int64_t tokens = 0;
  int64_t text_bytes = 0;
  int64_t skipped_empty = 0;
  int shards = 0;
  double seconds = 0;
  // Where the time went: waiting for the reader, encoding (parallel), writing.
  double read_seconds = 0;
  double encode_seconds = 0;
  double write_seconds = 0;
};

absl::StatusOr<TokenizeReport> TokenizeCorpus(const BpeTokenizer& tokenizer,
                                              const TokenizeOptions& options);

// Byte offsets where `text` may be cut into independently encodable parts of about
// `target_bytes`: each cut is just after a '\n' and before a non-whitespace character, a place
// where GPT-2's pre-tokeniser always ends a piece. Returns the part boundaries, starting with 0
// and ending with text.size().
std::vector<size_t> SafeCuts(std::string_view text, size_t target_bytes);

}  // namespace aoetron::data
