// Reading and writing GPT-2's tokenizer files: encoder.json and vocab.bpe.
//
// encoder.json: one JSON object mapping each token's text to its id, e.g.
//   {"!": 0, "\"": 1, ..., "\u0120the": 262, ..., "<|endoftext|>": 50256}
// Token text is the token's bytes through GPT-2's byte->character mapping (byte_unicode.h).
// Ids must be exactly 0..N-1. Entries of the form <|name|> are special tokens.
//
// vocab.bpe: a "#version: 0.2" line, then one merge per line in rank order: the two parts'
// texts separated by a single space ("Ġ t"). Each part and their concatenation must be tokens.
//
// Errors (absl::InvalidArgumentError, absl::NotFoundError for a missing file) name the file and
// the byte offset (encoder.json) or line (vocab.bpe) of the problem. The parsers accept any
// bytes without crashing (they are fuzzed: tests/data/tokenizer_files_fuzzer.cc).
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/bpe_vocabulary.h"

namespace aoetron::data {

// Parses the two files' contents. `encoder_name` / `merges_name` are used in error messages.
absl::StatusOr<BpeVocabulary> ParseGpt2TokenizerFiles(std::string_view encoder_json,
                                                      std::string_view encoder_name,
                                                      std::string_view vocab_bpe,
                                                      std::string_view merges_name);

// Reads <dir>/encoder.json and <dir>/vocab.bpe.
absl::StatusOr<BpeVocabulary> ReadGpt2TokenizerFiles(const std::string& dir);

// Writes <dir>/encoder.json and <dir>/vocab.bpe (creating dir) in the layout GPT-2's own files
// use, so that Python tools that read GPT-2 files read ours.
absl::Status WriteGpt2TokenizerFiles(const BpeVocabulary& vocab, const std::string& dir);

// Reads a whole file into memory; NotFound / Internal errors name the file.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace aoetron::data
