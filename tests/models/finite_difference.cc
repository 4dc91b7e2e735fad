#include "tests/models/finite_difference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <optional>

namespace aoetron::testing {
namespace {

void ExpectClose(const std::string& what, double analytic, double numeric) {
  const double tolerance =
      kAbsoluteTolerance + kRelativeTolerance * std::max(std::abs(analytic), std::abs(numeric));
  EXPECT_NEAR(analytic, numeric, tolerance) << what;
}

// A derivative estimate, or nothing when the objective is not smooth within ±h of the point.
//
// Two Richardson estimates from nested steps, R₁ = (4·D(h/2) − D(h))/3 and R₂ = (4·D(h/4) −
// D(h/2))/3, agree to ~1e-10 relative when the objective is smooth on [θ−h, θ+h] (see the header).
// The routed layers are only piecewise smooth: top-K selection changes where two expert scores
// cross, and the output jumps there by some J. A crossing within ±h puts J/(2s) into the
// differences with step s ≥ the distance to it and not into the smaller ones, so R₁ and R₂ then
// differ by O(J/h). Such a point has no derivative to check; the caller picks another one. This
// test cannot pass a wrong gradient: both estimates are of the objective alone.
template <typename CentralDifference>
std::optional<double> SmoothDerivative(CentralDifference&& difference, double h) {
  const double d1 = difference(h), d2 = difference(h / 2), d4 = difference(h / 4);
  const double r1 = (4.0 * d2 - d1) / 3.0, r2 = (4.0 * d4 - d2) / 3.0;
  const double agreement =
      kAbsoluteTolerance + 0.1 * kRelativeTolerance * std::max(std::abs(r1), std::abs(r2));
  if (std::abs(r1 - r2) > agreement) return std::nullopt;
  return r2;
}

// Points tried before giving up on finding a smooth one.
constexpr int kMaxPointsTried = 8;

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
  auto along_direction = [&](double step) {
    for (int64_t i = 0; i < n; ++i) v[i] += step * direction[i];
    const double plus = objective();
    for (int64_t i = 0; i < n; ++i) v[i] -= 2 * step * direction[i];
    const double minus = objective();
    for (int64_t i = 0; i < n; ++i) v[i] += step * direction[i];
    return (plus - minus) / (2 * step);
  };
  bool checked = false;
  for (int attempt = 0; attempt < kMaxPointsTried && !checked; ++attempt) {
    double analytic = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      direction[i] = coin(rng) ? unit : -unit;
      analytic += direction[i] * g[i];
    }
    if (std::optional<double> numeric = SmoothDerivative(along_direction, h)) {
      ExpectClose(what + " (random direction)", analytic, *numeric);
      checked = true;
    }
  }
  EXPECT_TRUE(checked) << what << ": no smooth random direction in " << kMaxPointsTried;

  std::uniform_int_distribution<int64_t> pick(0, n - 1);
  for (int k = 0; k < elements; ++k) {
    checked = false;
    for (int attempt = 0; attempt < kMaxPointsTried && !checked; ++attempt) {
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
      if (std::optional<double> numeric = SmoothDerivative(along_element, h)) {
        ExpectClose(what + " element " + std::to_string(i), g[i], *numeric);
        checked = true;
      }
    }
    EXPECT_TRUE(checked) << what << ": no smooth element in " << kMaxPointsTried << " tries";
  }
}

}  // namespace aoetron::testing
