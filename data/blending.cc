#include "data/blending.h"

#include <algorithm>
#include <cmath>

namespace aoetron::data {
namespace {

// a · b rounded to double: the volatile store keeps the compiler from fusing the product into
// the subtraction that follows (an FMA rounds once, after both).
double RoundedProduct(double a, double b) {
  volatile double product = a * b;
  return product;
}

}  // namespace

absl::StatusOr<BlendingIndex> BuildBlendingIndex(const std::vector<double>& shares, int64_t size) {
  if (shares.empty() || shares.size() > 32767) {
    return absl::InvalidArgumentError("blending needs 1 to 32767 datasets");
  }
  for (double s : shares) {
    if (!(s > 0) || !std::isfinite(s)) {
      return absl::InvalidArgumentError("blend shares must be finite and > 0");
    }
  }
  BlendingIndex index;
  index.dataset_index.resize(static_cast<size_t>(size));
  index.dataset_sample_index.resize(static_cast<size_t>(size));
  index.samples_per_dataset.assign(shares.size(), 0);
  for (int64_t i = 0; i < size; ++i) {
    const double at = std::max<double>(static_cast<double>(i), 1.0);
    size_t best = 0;
    double best_error =
        RoundedProduct(shares[0], at) - static_cast<double>(index.samples_per_dataset[0]);
    for (size_t d = 1; d < shares.size(); ++d) {
      const double error =
          RoundedProduct(shares[d], at) - static_cast<double>(index.samples_per_dataset[d]);
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

std::vector<BlendRequest> MegatronBlendRequests(const std::vector<double>& normalized_weights,
                                                int64_t total, double surplus) {
  // Python: int(math.ceil(math.ceil(total * w) * (1 + surplus))); total * w is a float product.
  const double factor = 1.0 + surplus;
  std::vector<BlendRequest> requests;
  for (double w : normalized_weights) {
    BlendRequest r;
    r.target = static_cast<int64_t>(std::ceil(static_cast<double>(total) * w));
    r.build = static_cast<int64_t>(std::ceil(static_cast<double>(r.target) * factor));
    requests.push_back(r);
  }
  return requests;
}

std::vector<double> LegacyBlendShares(const std::vector<double>& weights) {
  double sum = 0;
  for (double w : weights) sum += w;
  std::vector<double> shares(weights.size());
  for (size_t d = 0; d < weights.size(); ++d) shares[d] = weights[d] / sum;
  return shares;
}

}  // namespace aoetron::data
