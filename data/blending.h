// Blending several datasets by weight, as Megatron's build_blending_indices does: sample i of
// the blend comes from the dataset whose count lags its share the most,
//     d_i = argmax_d ( w_d · max(i, 1) − taken_d ),   ties to the lowest d,
// and is that dataset's next sample (dataset_sample_index = taken_d before the increment).
// Weights are normalised to sum to 1. Deterministic; no randomness.
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

// InvalidArgument for no weights, more than 32767 datasets, negative weights or a zero sum.
absl::StatusOr<BlendingIndex> BuildBlendingIndex(const std::vector<double>& weights, int64_t size);

}  // namespace aoetron::data
