#include "launcher/study/power_law_fit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace aoetron::study {
namespace {

TEST(PowerLawFitTest, RecoversAnExactPowerLaw) {
  std::vector<double> compute, loss;
  for (double c : {1e15, 3e15, 1e16, 3e16, 1e17}) {
    compute.push_back(c);
    loss.push_back(42.0 * std::pow(c, -0.05));
  }
  absl::StatusOr<PowerLawFit> fit = FitPowerLaw(compute, loss);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_NEAR(fit->b, 0.05, 1e-12);
  EXPECT_NEAR(fit->a, 42.0, 42.0 * 1e-9);
  EXPECT_NEAR(fit->se_b, 0.0, 1e-9);
  EXPECT_NEAR(fit->r_squared, 1.0, 1e-12);
  EXPECT_EQ(fit->points, 5);
  EXPECT_EQ(fit->distinct_compute, 5);
}

TEST(PowerLawFitTest, StandardErrorsCoverTheTruthOnNoisyData) {
  // Three seeds at each of six compute values, 1 % multiplicative noise: the fitted exponent is
  // within 3 standard errors of the truth, and the standard error is of the size the noise
  // implies (σ / √Sxx).
  std::mt19937_64 random(7);
  std::normal_distribution<double> noise(0.0, 0.01);
  std::vector<double> compute, loss;
  double sxx = 0, mean = 0;
  const std::vector<double> grid = {1e14, 4e14, 1.6e15, 6.4e15, 2.56e16, 1e17};
  for (double c : grid) mean += std::log(c) / grid.size();
  for (double c : grid) {
    for (int seed = 0; seed < 3; ++seed) {
      compute.push_back(c);
      loss.push_back(30.0 * std::pow(c, -0.07) * std::exp(noise(random)));
      sxx += (std::log(c) - mean) * (std::log(c) - mean);
    }
  }
  absl::StatusOr<PowerLawFit> fit = FitPowerLaw(compute, loss);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_LT(std::fabs(fit->b - 0.07), 3 * fit->se_b);
  EXPECT_GT(fit->se_b, 0.3 * 0.01 / std::sqrt(sxx));
  EXPECT_LT(fit->se_b, 3.0 * 0.01 / std::sqrt(sxx));
  EXPECT_LT(std::fabs(std::log(fit->a) - std::log(30.0)), 3 * fit->se_log_a);
  EXPECT_EQ(fit->distinct_compute, 6);
}

TEST(PowerLawFitTest, RefusesFewerThanThreeComputeValues) {
  absl::StatusOr<PowerLawFit> fit = FitPowerLaw({1e15, 1e15, 2e15, 2e15}, {3.0, 3.1, 2.9, 2.95});
  EXPECT_EQ(fit.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(FitPowerLaw({1e15, 2e15, 3e15}, {3.0, -1.0, 2.0}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace aoetron::study
