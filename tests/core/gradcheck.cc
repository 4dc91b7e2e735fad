#include "tests/core/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>

namespace aoetron::optest {
namespace {

double MaxAbs(const Tensor& t) {
  double m = 0.0;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::abs(At(t, i)));
  return m;
}

}  // namespace

uint64_t TestSeed() {
  if (const char* env = std::getenv("AOETRON_TEST_SEED")) return std::strtoull(env, nullptr, 10);
  return std::random_device{}();
}

std::string SeedTrace(uint64_t seed) {
  return "random seed " + std::to_string(seed) +
         " (rerun with AOETRON_TEST_SEED=" + std::to_string(seed) + ")";
}

Tensor Uniform(const Shape& shape, std::mt19937_64& rng, double lo, double hi) {
  Tensor t = Tensor::Empty(shape, DType::kF64);
  std::uniform_real_distribution<double> dist(lo, hi);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng);
  return t;
}

Tensor ZerosLike(const Tensor& t) { return Tensor::Zeros(t.shape(), t.dtype()); }

Tensor Clone(const Tensor& t) {
  Tensor c = Tensor::Empty(t.shape(), t.dtype());
  std::memcpy(c.raw_data(), t.raw_data(), t.nbytes());
  return c;
}

Tensor ToF32(const Tensor& t) {
  Tensor c = Tensor::Empty(t.shape(), DType::kF32);
  float* p = c.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(At(t, i));
  return c;
}

Tensor ToF64(const Tensor& t) {
  Tensor c = Tensor::Empty(t.shape(), DType::kF64);
  double* p = c.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = At(t, i);
  return c;
}

double At(const Tensor& t, int64_t i) {
  if (t.dtype() == DType::kF64) return t.data<double>()[i];
  return static_cast<double>(t.data<float>()[i]);
}

::testing::AssertionResult CheckGradients(const std::function<std::vector<Tensor>()>& forward,
                                          const std::vector<Tensor>& projections,
                                          const std::vector<GradInput>& inputs) {
  for (const GradInput& input : inputs) {
    if (input.value.dtype() != DType::kF64 || input.analytic.dtype() != DType::kF64 ||
        input.value.shape() != input.analytic.shape()) {
      return ::testing::AssertionFailure()
             << input.name << ": value and gradient must be f64 of one shape, got "
             << input.value.DebugString() << " and " << input.analytic.DebugString();
    }
    Tensor value = input.value;
    double* x = value.data<double>();
    const double scale = std::max(MaxAbs(input.analytic), 1e-300);
    int failures = 0;
    std::ostringstream report;
    for (int64_t i = 0; i < value.numel(); ++i) {
      const double saved = x[i];
      x[i] = saved + kStep;
      const std::vector<Tensor> plus = forward();
      x[i] = saved - kStep;
      const std::vector<Tensor> minus = forward();
      x[i] = saved;
      if (plus.size() != projections.size() || minus.size() != projections.size()) {
        return ::testing::AssertionFailure()
               << "forward returned " << plus.size() << " outputs for " << projections.size()
               << " projections";
      }
      double numeric = 0.0, rounding = 0.0;
      for (size_t k = 0; k < projections.size(); ++k) {
        const double* r = projections[k].data<double>();
        const double* yp = plus[k].data<double>();
        const double* ym = minus[k].data<double>();
        for (int64_t j = 0; j < projections[k].numel(); ++j) {
          numeric += (yp[j] - ym[j]) * r[j];
          if (yp[j] != ym[j]) rounding += (std::abs(yp[j]) + std::abs(ym[j])) * std::abs(r[j]);
        }
      }
      numeric /= 2.0 * kStep;
      rounding *= kRoundingUlps * std::numeric_limits<double>::epsilon() / (2.0 * kStep);
      const double analytic = input.analytic.data<double>()[i];
      const double tol = kRelTol * std::abs(numeric) + kAbsTolFraction * scale + rounding;
      if (!(std::abs(analytic - numeric) <= tol)) {
        if (++failures <= 5) {
          report << "\n  " << input.name << "[" << i << "]: analytic " << analytic
                 << ", finite difference " << numeric << ", |diff| " << std::abs(analytic - numeric)
                 << " > tol " << tol;
        }
      }
    }
    if (failures > 0) {
      return ::testing::AssertionFailure()
             << failures << " of " << value.numel() << " elements of d" << input.name
             << " disagree with finite differences:" << report.str();
    }
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult NormwiseClose(const std::string& what, const Tensor& a, const Tensor& b,
                                         double tol) {
  if (a.shape() != b.shape()) {
    return ::testing::AssertionFailure()
           << what << ": shapes differ: " << a.DebugString() << " vs " << b.DebugString();
  }
  const double norm = std::max(MaxAbs(b), std::numeric_limits<double>::min());
  double worst = 0.0;
  int64_t worst_i = -1;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double diff = std::abs(At(a, i) - At(b, i));
    if (std::isnan(diff)) {
      return ::testing::AssertionFailure() << what << ": NaN at element " << i
                                           << " (a = " << At(a, i) << ", b = " << At(b, i) << ")";
    }
    if (diff > worst || worst_i < 0) {
      worst = diff;
      worst_i = i;
    }
  }
  if (a.numel() == 0 || worst <= tol * norm) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": max |a − b| = " << worst << " at element " << worst_i
         << " (a = " << At(a, worst_i) << ", b = " << At(b, worst_i) << ") exceeds " << tol
         << " · max|b| = " << tol * norm;
}

::testing::AssertionResult ElementwiseClose(const std::string& what, const Tensor& a,
                                            const Tensor& b, double tol) {
  if (a.shape() != b.shape()) {
    return ::testing::AssertionFailure()
           << what << ": shapes differ: " << a.DebugString() << " vs " << b.DebugString();
  }
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double x = At(a, i), y = At(b, i);
    if (!(std::abs(x - y) <= tol * std::max(std::abs(x), std::abs(y)))) {
      return ::testing::AssertionFailure()
             << what << ": element " << i << ": " << x << " vs " << y << " (tol " << tol << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult BitwiseEqual(const std::string& what, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) {
    return ::testing::AssertionFailure()
           << what << ": " << a.DebugString() << " vs " << b.DebugString();
  }
  if (std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) != 0) {
    for (int64_t i = 0; i < a.numel(); ++i) {
      const size_t size = SizeOf(a.dtype());
      if (std::memcmp(static_cast<const char*>(a.raw_data()) + i * size,
                      static_cast<const char*>(b.raw_data()) + i * size, size) != 0) {
        return ::testing::AssertionFailure() << what << ": first difference at element " << i;
      }
    }
  }
  return ::testing::AssertionSuccess();
}

void ExpectAccumulates(const std::function<void()>& backward, const std::vector<Tensor>& grads,
                       std::mt19937_64& rng) {
  std::vector<Tensor> grads_view = grads;  // handles: writing through them writes the grads
  // g: one call from zero.
  for (Tensor& g : grads_view) std::memset(g.raw_data(), 0, g.nbytes());
  backward();
  std::vector<Tensor> once;
  for (const Tensor& g : grads_view) once.push_back(Clone(g));
  // Two calls from zero: 2g.
  for (Tensor& g : grads_view) std::memset(g.raw_data(), 0, g.nbytes());
  backward();
  backward();
  for (size_t k = 0; k < grads.size(); ++k) {
    const double scale = MaxAbs(once[k]);
    ASSERT_GT(scale, 0.0) << "gradient " << k << " is all zero: nothing to check";
    for (int64_t i = 0; i < grads[k].numel(); ++i) {
      const double g = At(once[k], i);
      ASSERT_NEAR(At(grads[k], i), 2.0 * g, kAccumulateTol * 2.0 * scale)
          << "gradient " << k << " element " << i << ": two calls from zero must give 2g";
    }
  }
  // From random G0: G0 + g.
  std::vector<Tensor> start;
  for (Tensor& g : grads_view) {
    Tensor g0 = Uniform(g.shape(), rng);
    std::memcpy(g.raw_data(), g0.raw_data(), g.nbytes());
    start.push_back(g0);
  }
  backward();
  for (size_t k = 0; k < grads.size(); ++k) {
    const double scale = MaxAbs(once[k]) + 1.0;  // |G0| ≤ 1
    for (int64_t i = 0; i < grads[k].numel(); ++i) {
      const double g0 = At(start[k], i), g = At(once[k], i);
      ASSERT_NEAR(At(grads[k], i), g0 + g, kAccumulateTol * scale)
          << "gradient " << k << " element " << i << ": must accumulate onto its old value";
    }
  }
}

}  // namespace aoetron::optest
