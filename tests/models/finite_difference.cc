#include "tests/models/finite_difference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

namespace aoetron::testing {
namespace {

void ExpectClose(const std::string& what, double analytic, double numeric) {
  const double tolerance =
      kAbsoluteTolerance + kRelativeTolerance * std::max(std::abs(analytic), std::abs(numeric));
  EXPECT_NEAR(analytic, numeric, tolerance) << what;
}

// (4·D(h/2) − D(h)) / 3 for a central difference D(step).
template <typename CentralDifference>
double Richardson(CentralDifference&& difference, double h) {
  return (4.0 * difference(h / 2) - difference(h)) / 3.0;
}

}  // namespace

uint64_t TestSeed() {
  if (const char* fixed = std::getenv("AOETRON_TEST_SEED"))
    return std::strtoull(fixed, nullptr, 10);
  return std::random_device{}();
}

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
  auto along_direction = [&](double step) {
    for (int64_t i = 0; i < n; ++i) v[i] += step * direction[i];
    const double plus = objective();
    for (int64_t i = 0; i < n; ++i) v[i] -= 2 * step * direction[i];
    const double minus = objective();
    for (int64_t i = 0; i < n; ++i) v[i] += step * direction[i];
    return (plus - minus) / (2 * step);
  };
  ExpectClose(what + " (random direction)", analytic, Richardson(along_direction, h));

  std::uniform_int_distribution<int64_t> pick(0, n - 1);
  for (int k = 0; k < elements; ++k) {
    const int64_t i = pick(rng);
    const double saved = v[i];
    auto along_element = [&](double step) {
      v[i] = saved + step;
      const double plus = objective();
      v[i] = saved - step;
      const double minus = objective();
      v[i] = saved;
      return (plus - minus) / (2 * step);
    };
    ExpectClose(what + " element " + std::to_string(i), g[i], Richardson(along_element, h));
  }
}

}  // namespace aoetron::testing
