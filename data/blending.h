// Blending several datasets by weight, as Megatron's build_blending_indices (helpers.cpp) does:
// sample i of the blend comes from the dataset whose count lags its share the most,
//     d_i = argmax_d ( s_d · max(i, 1) − taken_d ),   ties to the lowest d,
// and is that dataset's next sample (dataset_sample_index = taken_d before the increment).
// The product s_d · max(i, 1) is rounded to double before the subtraction, as Megatron's helper
// (built without FMA) computes it, whatever contraction the compiler here would allow: fused into
// one FMA the error would round differently, and exact ties (weights 50,30,20 at sample 10)
// would be broken by rounding noise instead of by the lowest index.
//
// Shares and sizes, SampleOrder::kMegatronCore (BlendedMegatronDatasetBuilder, BlendedDataset):
//     w = normalize(weights)                       (MegatronNormalize)
//     dataset d is asked for   ceil(ceil(N · w_d) · (1 + 0.005))   samples,
//     the blend has            Σ_d ceil(N · w_d)                   samples,
//     and its shares are       s = normalize(w)    (normalised a second time, as BlendedDataset
//                                                   does "for bitwise identical comparison").
// SampleOrder::kAoetronV1: s = weights / (left-to-right sum); the blend has N samples and each
// dataset is asked for exactly its count in those N.
// Deterministic; no randomness; the same result on every CPU.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace aoetron::data {

struct BlendingIndex {
  std::vector<int16_t> dataset_index;         // which dataset, per blended sample
  std::vector<int64_t> dataset_sample_index;  // which sample of it
  std::vector<int64_t> samples_per_dataset;   // how many each dataset contributes
};

// The greedy index over `shares` exactly as given (no normalisation here). InvalidArgument for
// no shares, more than 32767, or shares that are not finite and > 0.
absl::StatusOr<BlendingIndex> BuildBlendingIndex(const std::vector<double>& shares, int64_t size);

// Samples Megatron-Core asks of each dataset of a blend of `total` samples, given the weights
// normalised once: target = ceil(total · w_d) (what the blend uses; Σ target is its size) and
// build = ceil(target · (1 + surplus)) (what the dataset's index is built for).
struct BlendRequest {
  int64_t target = 0;
  int64_t build = 0;
};
std::vector<BlendRequest> MegatronBlendRequests(const std::vector<double>& normalized_weights,
                                                int64_t total, double surplus = 0.005);

// The shares of SampleOrder::kAoetronV1: weights / (left-to-right sum).
std::vector<double> LegacyBlendShares(const std::vector<double>& weights);

}  // namespace aoetron::data
