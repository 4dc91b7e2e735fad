#include "tests/models/finite_difference.h"

#include <gtest/gtest.h>

#include <cmath>

namespace aoetron::testing {
namespace {

void ExpectClose(const std::string& what, double analytic, double numeric) {
  const double tolerance =
      kAbsoluteTolerance + kRelativeTolerance * std::max(std::abs(analytic), std::abs(numeric));
  EXPECT_NEAR(analytic, numeric, tolerance) << what;
}

}  // namespace

void FillNormal(Tensor& t, double std, std::mt19937_64& rng) {
  std::normal_distribution<double> normal(0.0, std);
  double* data = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) data[i] = normal(rng);
}

void ExpectGradientMatchesFiniteDifferences(const std::string& what, Tensor value,
                                            const Tensor& grad,
                                            const std::function<double()>& objective,
                                            std::mt19937_64& rng, int elements) {
  ASSERT_EQ(value.shape(), grad.shape()) << what;
  double* v = value.data<double>();
  const double* g = grad.data<double>();
  const int64_t n = value.numel();
  const double h = kFiniteDifferenceStep;

  // Directional derivative along a random unit vector u ∈ {±1/√n}ⁿ: covers every element at
  // once. Unit length keeps the step's Euclidean size at h, so the error bound above holds.
  std::vector<double> direction(n);
  std::bernoulli_distribution coin(0.5);
  const double unit = 1.0 / std::sqrt(static_cast<double>(n));
  double analytic = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    direction[i] = coin(rng) ? unit : -unit;
    analytic += direction[i] * g[i];
  }
  for (int64_t i = 0; i < n; ++i) v[i] += h * direction[i];
  const double plus = objective();
  for (int64_t i = 0; i < n; ++i) v[i] -= 2 * h * direction[i];
  const double minus = objective();
  for (int64_t i = 0; i < n; ++i) v[i] += h * direction[i];
  ExpectClose(what + " (random direction)", analytic, (plus - minus) / (2 * h));

  std::uniform_int_distribution<int64_t> pick(0, n - 1);
  for (int k = 0; k < elements; ++k) {
    const int64_t i = pick(rng);
    const double saved = v[i];
    v[i] = saved + h;
    const double f_plus = objective();
    v[i] = saved - h;
    const double f_minus = objective();
    v[i] = saved;
    ExpectClose(what + " element " + std::to_string(i), g[i], (f_plus - f_minus) / (2 * h));
  }
}

}  // namespace aoetron::testing
