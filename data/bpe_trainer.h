// Training a byte-level BPE vocabulary (GPT-2 style) from a corpus.
//
// The corpus is split into pieces with GPT-2's pre-tokeniser and the pieces are counted. Each
// piece starts as its bytes; training then repeats: take the adjacent pair of tokens that occurs
// most often (ties: the pair of lowest (left id, right id)), make it a new token with the next
// id, and merge it everywhere. It stops at the requested vocabulary size (which includes the 256
// byte tokens and <|endoftext|>) or when no pair occurs twice.
//
// The result has GPT-2's layout: ids 0..255 are the bytes in GPT-2's order (byte_unicode.h),
// then merged tokens in merge order, then <|endoftext|> last; written with
// WriteGpt2TokenizerFiles it loads like GPT-2's own files. Deterministic: the same texts and
// options give the same vocabulary for any thread count.
//
// Thread safety: pure function; uses num_threads threads to count pieces.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/bpe_vocabulary.h"

namespace aoetron::data {

struct BpeTrainerOptions {
  int32_t vocab_size = 8192;  // >= 257
  int num_threads = 0;        // 0 = all cores
};

absl::StatusOr<BpeVocabulary> TrainBpe(const std::vector<std::string>& texts,
                                       const BpeTrainerOptions& options);

}  // namespace aoetron::data
