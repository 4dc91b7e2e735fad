// GptSampleIndex: how Megatron-Core's GPTDataset cuts training samples out of a token dataset.
//
// Given the lengths of the sequences a split may use, a sample length L (seq_length), the
// samples wanted N and a seed, under SampleOrder::kMegatronCore (sample_order.h; docs/data.md):
//
//   0. Epochs E: the fewest with E · tokens_per_epoch ≥ N·L + 1 (1 when N = 0: one epoch).
//      With E > 1, the last epoch is kept apart when few of its samples are needed:
//          samples_before_last = ((E−1) · tokens_per_epoch − 1) // L
//          samples_per_epoch   = (tokens_per_epoch − 1) // L
//          separate_last_epoch = N − samples_before_last < int(0.80 · samples_per_epoch)
//   1. document_index: the split's sequence ids, E copies one after the other, shuffled as one
//      array by numpy.random.RandomState(seed).shuffle — or, with a separate last epoch, the
//      first E−1 copies shuffled together and then the last copy shuffled on its own (both
//      from the same RandomState, in that order).
//   2. sample_index: sample i is the L+1 tokens that start at (document_index position p_i,
//      token offset o_i) and run, across sequence boundaries, to (p_{i+1}, o_{i+1}) inclusive.
//      Consecutive samples share one token: the last target of sample i is the first input of
//      sample i+1, exactly as Megatron's build_sample_idx does:
//          remaining = L + 1
//          while remaining > 0:
//              left = length(document_index[p]) - o
//              if left >= remaining: o += remaining - 1; remaining = 0
//              else: remaining -= left; p += 1; o = 0
//      There are S = (E · tokens_per_epoch − 1) // L samples.
//   3. shuffle_index: from the same RandomState, a shuffle of 0 .. S−1 — or, with a separate
//      last epoch, a shuffle of 0 .. samples_before_last−1 followed by a shuffle of the rest.
//
// Under SampleOrder::kAoetronV1 (the order before; kept so old runs resume on the same data):
// epochs as above, each epoch's documents shuffled on its own and each epoch's samples shuffled
// within the epoch they start in, by mt19937_64 through DeterministicShuffle.
//
// Only integer arithmetic decides the indices, apart from int(0.80 · samples_per_epoch), a
// single correctly rounded product: the same result on every CPU and with any compiler flags.
// Thread safety: pure functions; the struct is a plain value.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "data/sample_order.h"

namespace aoetron::data {

struct GptSampleIndex {
  int64_t seq_length = 0;
  int64_t num_epochs = 0;
  bool separate_last_epoch = false;
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
  // numpy's RandomState takes seeds below 2³² only (kMegatronCore).
  uint64_t seed = 0;
  SampleOrder order = SampleOrder::kMegatronCore;
};

// InvalidArgument when seq_length < 1, or the split has no tokens, or one epoch cannot make a
// single sample while num_samples == 0, or (kMegatronCore) seed ≥ 2³².
absl::StatusOr<GptSampleIndex> BuildGptSampleIndex(const GptSampleIndexRequest& request);

// In-place Fisher-Yates shuffle driven by mt19937_64 seeded with `seed` (kAoetronV1 only).
void DeterministicShuffle(std::vector<int64_t>* values, uint64_t seed);

}  // namespace aoetron::data
