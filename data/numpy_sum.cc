#include "data/numpy_sum.h"

#include <cstddef>

namespace aoetron::data {
namespace {

double PairwiseSum(const double* a, size_t n) {
  if (n < 8) {
    double sum = 0.0;
    for (size_t i = 0; i < n; ++i) sum += a[i];
    return sum;
  }
  if (n <= 128) {
    double r[8];
    for (size_t j = 0; j < 8; ++j) r[j] = a[j];
    size_t i = 8;
    for (; i < n - n % 8; i += 8) {
      for (size_t j = 0; j < 8; ++j) r[j] += a[i + j];
    }
    double sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) sum += a[i];
    return sum;
  }
  size_t half = n / 2;
  half -= half % 8;
  return PairwiseSum(a, half) + PairwiseSum(a + half, n - half);
}

}  // namespace

double NumpySum(const std::vector<double>& values) {
  return 0.0 + PairwiseSum(values.data(), values.size());
}

std::vector<double> MegatronNormalize(const std::vector<double>& weights) {
  const double sum = NumpySum(weights);
  std::vector<double> normalized(weights.size());
  for (size_t i = 0; i < weights.size(); ++i) normalized[i] = weights[i] / sum;
  return normalized;
}

}  // namespace aoetron::data
