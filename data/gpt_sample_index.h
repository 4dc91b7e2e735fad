// GptSampleIndex: how Megatron's GPTDataset cuts training samples out of a token dataset.
//
// Given the lengths of the sequences a split may use, a sample length L (seq_length) and a seed:
//
//   1. document_index: the split's sequences listed once per epoch, each epoch in its own random
//      order (seeded by seed and epoch). Enough epochs are used to provide the requested number
//      of samples.
//   2. sample_index: sample i is the L+1 tokens that start at (document_index position p_i,
//      token offset o_i) and run, across sequence boundaries, to (p_{i+1}, o_{i+1}) inclusive.
//      Consecutive samples share one token: the last target of sample i is the first input of
//      sample i+1, exactly as Megatron's build_sample_idx does:
//          remaining = L + 1
//          while remaining > 0:
//              left = length(document_index[p]) - o
//              if left >= remaining: o += remaining - 1; remaining = 0
//              else: remaining -= left; p += 1; o = 0
//      There are floor((epochs · tokens_per_epoch - 1) / L) samples.
//   3. shuffle_index: a permutation of the samples; samples are shuffled within the epoch they
//      start in, so every sample of epoch e is seen before any of epoch e+1 (the spirit of
//      Megatron's separate final epoch).
//
// Random numbers come from std::mt19937_64 (its output is fixed by the C++ standard) through
// our own Fisher-Yates shuffle, so indices are identical on every machine and library.
// Thread safety: pure functions; the struct is a plain value.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace aoetron::data {

struct GptSampleIndex {
  int64_t seq_length = 0;
  int64_t num_epochs = 0;
  std::vector<int64_t> document_index;       // position -> sequence id (in the caller's numbering)
  std::vector<int64_t> sample_doc_position;  // num_samples + 1 entries
  std::vector<int32_t> sample_offset;        // num_samples + 1 entries
  std::vector<int64_t> shuffle_index;        // num_samples entries

  int64_t num_samples() const { return static_cast<int64_t>(shuffle_index.size()); }
};

struct GptSampleIndexRequest {
  // Sequence ids the split may use, and their lengths (same size).
  std::vector<int64_t> sequence_ids;
  std::vector<int32_t> sequence_lengths;
  int64_t seq_length = 0;
  // Samples wanted; 0 means as many as one epoch gives.
  int64_t num_samples = 0;
  uint64_t seed = 0;
};

// InvalidArgument when seq_length < 1, or the split has no tokens, or one epoch cannot make a
// single sample while num_samples == 0.
absl::StatusOr<GptSampleIndex> BuildGptSampleIndex(const GptSampleIndexRequest& request);

// In-place Fisher-Yates shuffle driven by mt19937_64 seeded with `seed`.
void DeterministicShuffle(std::vector<int64_t>* values, uint64_t seed);

}  // namespace aoetron::data
