#include "core/optim/grad_clip.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace aoetron {
namespace {

Tensor F32Tensor(const std::vector<float>& values) {
  Tensor t = Tensor::Empty({static_cast<int64_t>(values.size())}, DType::kF32);
  std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(float));
  return t;
}

std::vector<float> Values(const Tensor& t) {
  const float* data = t.data<float>();
  return std::vector<float>(data, data + t.numel());
}

TEST(GradClipTest, GlobalSumSquaresAddsEveryTensor) {
  Tensor f64 = Tensor::Empty({3}, DType::kF64);
  const double f64_values[] = {1.0, -2.0, 2.0};
  std::memcpy(f64.raw_data(), f64_values, sizeof(f64_values));
  std::vector<Tensor> grads = {F32Tensor({3.0f, -4.0f}), f64, F32Tensor({0.5f}),
                               Tensor::Empty({0}, DType::kF32)};
  EXPECT_EQ(GlobalSumSquares(grads), 25.0 + 9.0 + 0.25);
  EXPECT_EQ(GlobalSumSquares({}), 0.0);
}

TEST(GradClipTest, GlobalSumSquaresIsInDoubleAndThreadCountIndependent) {
  // Values whose squares f32 could not accumulate exactly, over a tensor large enough to split.
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> big(1 << 20), small(1000);
  for (float& x : big) x = uniform(rng);
  for (float& x : small) x = 1e-3f * uniform(rng);
  const std::vector<Tensor> grads = {F32Tensor(big), F32Tensor(small)};
  double exact = 0.0;
  for (float x : big) exact += static_cast<double>(x) * x;
  for (float x : small) exact += static_cast<double>(x) * x;

  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one_thread = GlobalSumSquares(grads);
  omp_set_num_threads(2);
  const double two_threads = GlobalSumSquares(grads);
  omp_set_num_threads(saved_threads);
  EXPECT_EQ(std::memcmp(&one_thread, &two_threads, sizeof(double)), 0)
      << one_thread << " vs " << two_threads;
  EXPECT_NEAR(one_thread, exact, 1e-9 * exact);  // f32 accumulation would be off by ~1e-4
}

TEST(GradClipTest, NormAboveThresholdScalesEveryTensor) {
  // ‖(6, 8, 0)‖ = 10 over two tensors; max_norm 5 → factor 5 / (10 + 1e-6).
  std::vector<Tensor> grads = {F32Tensor({6.0f}), F32Tensor({8.0f, 0.0f})};
  const double norm = std::sqrt(GlobalSumSquares(grads));
  ASSERT_EQ(norm, 10.0);
  const double factor = ClipByGlobalNorm(grads, norm, 5.0);
  EXPECT_DOUBLE_EQ(factor, 5.0 / (10.0 + 1e-6));
  EXPECT_FLOAT_EQ(grads[0].data<float>()[0], static_cast<float>(6.0 * factor));
  EXPECT_FLOAT_EQ(grads[1].data<float>()[0], static_cast<float>(8.0 * factor));
  EXPECT_EQ(grads[1].data<float>()[1], 0.0f);
  const double clipped_norm = std::sqrt(GlobalSumSquares(grads));
  EXPECT_LT(clipped_norm, 5.0);
  EXPECT_NEAR(clipped_norm, 5.0, 1e-5);
}

TEST(GradClipTest, NormAtOrBelowThresholdLeavesGradsUntouched) {
  std::vector<Tensor> grads = {F32Tensor({3.0f, 4.0f})};  // norm 5
  EXPECT_EQ(ClipByGlobalNorm(grads, 5.0, 5.0), 1.0);      // equal: not above, no clipping
  EXPECT_EQ(ClipByGlobalNorm(grads, 5.0, 7.5), 1.0);
  EXPECT_EQ(Values(grads[0]), (std::vector<float>{3.0f, 4.0f}));
}

TEST(GradClipTest, NonPositiveMaxNormDisablesClipping) {
  std::vector<Tensor> grads = {F32Tensor({300.0f, 400.0f})};
  EXPECT_EQ(ClipByGlobalNorm(grads, 500.0, 0.0), 1.0);
  EXPECT_EQ(ClipByGlobalNorm(grads, 500.0, -1.0), 1.0);
  EXPECT_EQ(Values(grads[0]), (std::vector<float>{300.0f, 400.0f}));
}

TEST(GradClipTest, NonFiniteNormIsReportedAndGradsLeftUnscaled) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<Tensor> grads = {F32Tensor({1.0f, inf}), F32Tensor({2.0f})};
  const double norm = std::sqrt(GlobalSumSquares(grads));
  ASSERT_TRUE(std::isinf(norm));
  for (double bad_norm : {norm, std::numeric_limits<double>::quiet_NaN()}) {
    for (double max_norm : {1.0, 0.0}) {
      EXPECT_TRUE(std::isnan(ClipByGlobalNorm(grads, bad_norm, max_norm)))
          << "norm " << bad_norm << " max_norm " << max_norm;
    }
  }
  // Scaling by max_norm / (inf + 1e-6) = 0 would have turned inf into NaN and 1, 2 into 0.
  EXPECT_EQ(Values(grads[0]), (std::vector<float>{1.0f, inf}));
  EXPECT_EQ(Values(grads[1]), (std::vector<float>{2.0f}));
}

}  // namespace
}  // namespace aoetron
