// BpeVocabulary: the contents of a byte-level BPE tokenizer, independent of any file format.
//
// A vocabulary is a list of tokens indexed by id. Each ordinary token is a byte string; every one
// of the 256 single bytes is a token. Special tokens (<|endoftext|>) are control symbols: the
// encoder never produces them from text, only when asked (EncodeAllowingSpecial) or when the
// dataset writer appends an end-of-document token.
//
// `merges` lists the merge rules in rank order as pairs of token ids (left, right); the rule
// makes the token whose bytes are left's bytes followed by right's. It is kept for writing the
// vocab.bpe file and for checking; the encoder ranks pairs by the id of the merged token (as
// tiktoken and gpt-tokenizer do), which GPT-2's files and our trainer assign in merge order.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace aoetron::data {

inline constexpr char kEndOfTextToken[] = "<|endoftext|>";

struct BpeVocabulary {
  // tokens[id]: the raw bytes of an ordinary token, or the name of a special token.
  std::vector<std::string> tokens;
  // is_special[id]: true for special tokens. Same size as `tokens`.
  std::vector<bool> is_special;
  // Merge rules in rank order: (left id, right id).
  std::vector<std::pair<int32_t, int32_t>> merges;

  int32_t size() const { return static_cast<int32_t>(tokens.size()); }
};

}  // namespace aoetron::data
