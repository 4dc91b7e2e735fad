// Helpers shared by the tensor-parallel tests: cutting a rank's box out of a full tensor and
// comparing a shard with that box.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>

#include "core/tensor.h"

namespace aoetron::tp_test {

// A new host tensor holding full[offset + i] for every multi-index i < shape (any rank).
inline Tensor Box(const Tensor& full, const Shape& offset, const Shape& shape) {
  AOETRON_CHECK(full.rank() == static_cast<int>(shape.size()) && offset.size() == shape.size());
  Tensor box = Tensor::Empty(shape, full.dtype());
  const size_t element = SizeOf(full.dtype());
  const int rank = full.rank();
  const auto* src = static_cast<const char*>(full.raw_data());
  auto* dst = static_cast<char*>(box.raw_data());
  for (int64_t i = 0; i < box.numel(); ++i) {
    int64_t rest = i, global = 0, stride = 1;
    for (int k = rank - 1; k >= 0; --k) {
      global += (rest % shape[k] + offset[k]) * stride;
      rest /= shape[k];
      stride *= full.dim(k);
    }
    std::copy_n(src + global * element, element, dst + i * element);
  }
  return box;
}

inline double At(const Tensor& t, int64_t i) {
  return t.dtype() == DType::kF64 ? t.data<double>()[i] : t.data<float>()[i];
}

// max_i |actual_i − expected_i| / max_i |expected_i| (0 when both are zero).
inline double RelativeMaxError(const Tensor& actual, const Tensor& expected) {
  AOETRON_CHECK(actual.shape() == expected.shape())
      << actual.DebugString() << " vs " << expected.DebugString();
  double err = 0.0, scale = 0.0;
  for (int64_t i = 0; i < actual.numel(); ++i) {
    err = std::max(err, std::abs(At(actual, i) - At(expected, i)));
    scale = std::max(scale, std::abs(At(expected, i)));
  }
  return scale > 0 ? err / scale : err;
}

inline bool BitwiseEqual(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::equal(static_cast<const char*>(a.raw_data()),
                    static_cast<const char*>(a.raw_data()) + a.nbytes(),
                    static_cast<const char*>(b.raw_data()));
}

inline void FillNormal(Tensor& t, std::mt19937_64& rng, double std = 1.0) {
  std::normal_distribution<double> normal(0.0, std);
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (t.dtype() == DType::kF64) {
      t.data<double>()[i] = normal(rng);
    } else {
      t.data<float>()[i] = static_cast<float>(normal(rng));
    }
  }
}

}  // namespace aoetron::tp_test
