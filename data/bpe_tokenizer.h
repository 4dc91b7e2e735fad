// BpeTokenizer: GPT-2-style byte-level BPE encoding and decoding.
//
// Encode(text) = GPT-2 pre-tokenisation (gpt2_pretokenizer.h), then for each piece:
//   - if the piece's bytes are a token, that token (as tiktoken and gpt-tokenizer do);
//   - else start from one token per byte and repeatedly merge the adjacent pair whose
//     concatenation is the token of lowest id, leftmost first, until no adjacent pair
//     concatenates to a token.
// This is tiktoken's rule, which gpt-tokenizer (our reference) follows; with GPT-2's files it
// gives the ids OpenAI's r50k_base encoding gives.
//
// Any byte string encodes, including invalid UTF-8, and Decode(Encode(x)) == x for every x:
// every single byte is a token, and Decode concatenates token bytes.
//
// Special tokens are never produced by Encode, even when the text contains "<|endoftext|>" (that
// text encodes as ordinary characters). EncodeAllowingSpecial recognises them.
//
// Pieces that need merging are remembered in a per-thread cache (thread_local, bounded, keyed
// by tokenizer instance), as tiktoken-style encoders do: real text repeats its rare words.
//
// Thread safety: a BpeTokenizer is immutable after construction; all const methods may be called
// from many threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "data/bpe_vocabulary.h"
#include "data/token_lookup.h"

namespace aoetron::data {

class BpeTokenizer {
 public:
  // Builds the encoder tables for `vocab`. InvalidArgument when the vocabulary lacks a token for
  // some single byte.
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> Create(BpeVocabulary vocab);
  // Reads <dir>/encoder.json and <dir>/vocab.bpe (tokenizer_files.h).
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> LoadFromDirectory(const std::string& dir);

  // Appends the ids of `text` to `ids`.
  void Encode(std::string_view text, std::vector<int32_t>* ids) const;
  std::vector<int32_t> Encode(std::string_view text) const;
  // Like Encode, but occurrences of special token names in `text` become those tokens.
  std::vector<int32_t> EncodeAllowingSpecial(std::string_view text) const;

  // Concatenated bytes of the tokens. InvalidArgument naming the position of an id outside
  // [0, vocab_size()).
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids) const;

  int32_t vocab_size() const { return vocab_.size(); }
  // Id of <|endoftext|>, or -1 when the vocabulary has none.
  int32_t end_of_text_id() const { return end_of_text_id_; }
  const BpeVocabulary& vocabulary() const { return vocab_; }

 private:
  explicit BpeTokenizer(BpeVocabulary vocab);
  // Encodes one piece that is not itself a token.
  void MergePiece(std::string_view piece, std::vector<int32_t>* ids) const;
  // Heap-based merging for long pieces (O(n log n) instead of O(n^2)).
  void MergeLongPiece(std::string_view piece, std::vector<int32_t>* ids) const;
  // Id of the token left+right, or -1.
  int32_t MergedId(int32_t left, int32_t right) const {
    auto it = pair_to_merged_.find(PairKey(left, right));
    return it == pair_to_merged_.end() ? -1 : it->second;
  }
  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }

  // MergePiece through the calling thread's cache.
  void MergePieceCached(std::string_view piece, std::vector<int32_t>* ids) const;

  BpeVocabulary vocab_;
  uint64_t instance_id_ = 0;  // distinguishes tokenizers in the per-thread merge cache
  int32_t end_of_text_id_ = -1;
  int32_t byte_to_id_[256];
  absl::flat_hash_map<std::string, int32_t> id_of_bytes_;  // ordinary tokens only
  TokenLookup token_lookup_;                               // the same, fast
  absl::flat_hash_map<uint64_t, int32_t> pair_to_merged_;
  std::vector<std::pair<std::string, int32_t>> specials_;  // (name, id)
};

}  // namespace aoetron::data
