#include "data/blending.h"

#include <algorithm>
#include <cmath>

namespace aoetron::data {

absl::StatusOr<BlendingIndex> BuildBlendingIndex(const std::vector<double>& weights, int64_t size) {
  if (weights.empty() || weights.size() > 32767) {
    return absl::InvalidArgumentError("blending needs 1 to 32767 datasets");
  }
  double sum = 0;
  for (double w : weights) {
    if (!(w >= 0) || !std::isfinite(w)) {
      return absl::InvalidArgumentError("blend weights must be finite and >= 0");
    }
    sum += w;
  }
  if (sum <= 0) return absl::InvalidArgumentError("blend weights must have a positive sum");
  std::vector<double> share(weights.size());
  for (size_t d = 0; d < weights.size(); ++d) share[d] = weights[d] / sum;
  BlendingIndex index;
  index.dataset_index.resize(static_cast<size_t>(size));
  index.dataset_sample_index.resize(static_cast<size_t>(size));
  index.samples_per_dataset.assign(weights.size(), 0);
  for (int64_t i = 0; i < size; ++i) {
    const double at = std::max<double>(static_cast<double>(i), 1.0);
    size_t best = 0;
    double best_error = share[0] * at - static_cast<double>(index.samples_per_dataset[0]);
    for (size_t d = 1; d < share.size(); ++d) {
      const double error = share[d] * at - static_cast<double>(index.samples_per_dataset[d]);
      if (error > best_error) {
        best_error = error;
        best = d;
      }
    }
    index.dataset_index[i] = static_cast<int16_t>(best);
    index.dataset_sample_index[i] = index.samples_per_dataset[best]++;
  }
  return index;
}

}  // namespace aoetron::data
