#include "core/optim/adamw.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace aoetron {
namespace {

// The update written straight from the formula in adamw.h, in double, one element at a time.
struct ScalarAdamW {
  double theta, m = 0.0, v = 0.0;
  // m with every term taken by absolute value: m itself can cancel to near zero, so f32's
  // rounding error in m is relative to this, not to |m|.
  double m_magnitude = 0.0;

  void Step(double g, double lr, double weight_decay, const AdamWHyperParams& hp, int64_t s) {
    const double beta1 = hp.beta1, beta2 = hp.beta2, eps = hp.eps;
    m = beta1 * m + (1 - beta1) * g;
    m_magnitude = beta1 * m_magnitude + (1 - beta1) * std::abs(g);
    v = beta2 * v + (1 - beta2) * g * g;
    const double m_hat = m / (1 - std::pow(beta1, s));
    const double v_hat = v / (1 - std::pow(beta2, s));
    theta = theta - lr * (m_hat / (std::sqrt(v_hat) + eps) + weight_decay * theta);
  }
};

Tensor F32Tensor(const std::vector<float>& values) {
  Tensor t = Tensor::Empty({static_cast<int64_t>(values.size())}, DType::kF32);
  std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(float));
  return t;
}

// Gradients spanning magnitudes, so that ε matters for some elements (|g| ≈ ε) and not others.
std::vector<float> GradientsForStep(int64_t step, int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  const float scales[] = {1e-8f, 1e-5f, 0.01f, 1.0f, 50.0f};
  std::vector<float> g(n);
  for (int64_t i = 0; i < n; ++i) g[i] = uniform(rng) * scales[(i + step) % 5];
  return g;
}

void ExpectMatchesReference(float weight_decay) {
  const AdamWHyperParams hp;  // β1 0.9, β2 0.95, ε 1e-8
  const int64_t n = 1037;     // odd: exercises the vector loop's remainder
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
  std::vector<float> theta0(n);
  for (float& x : theta0) x = uniform(rng);

  Tensor param = F32Tensor(theta0);
  Tensor m = Tensor::Zeros({n}, DType::kF32);
  Tensor v = Tensor::Zeros({n}, DType::kF32);
  std::vector<ScalarAdamW> reference;
  for (float x : theta0) reference.push_back({x});

  const float lrs[] = {1e-2f, 3e-3f, 5e-3f, 1e-3f, 2e-2f, 1e-2f, 7e-3f, 4e-3f};
  for (int64_t step = 1; step <= 8; ++step) {
    const std::vector<float> g = GradientsForStep(step, n, rng);
    const float lr = lrs[step - 1];
    AdamWUpdate(param, F32Tensor(g), m, v, lr, weight_decay, hp, step);
    for (int64_t i = 0; i < n; ++i) reference[i].Step(g[i], lr, weight_decay, hp, step);
    for (int64_t i = 0; i < n; ++i) {
      // Each step moves θ by about lr; f32 rounding of that move and of θ stays far below 1e-6.
      ASSERT_NEAR(param.data<float>()[i], reference[i].theta,
                  1e-6 + 1e-6 * std::abs(reference[i].theta))
          << "step " << step << " element " << i << " g " << g[i];
      ASSERT_NEAR(m.data<float>()[i], reference[i].m, 1e-6 * reference[i].m_magnitude)
          << "step " << step << " element " << i;
      ASSERT_NEAR(v.data<float>()[i], reference[i].v, 1e-6 * std::abs(reference[i].v) + 1e-20)
          << "step " << step << " element " << i;
    }
  }
}

TEST(AdamWTest, MatchesDoubleReferenceWithoutWeightDecay) { ExpectMatchesReference(0.0f); }

TEST(AdamWTest, MatchesDoubleReferenceWithWeightDecay) { ExpectMatchesReference(0.1f); }

TEST(AdamWTest, FirstStepIsSignOfGradientTimesLr) {
  // At step 1 the bias corrections undo the zero initialisation: m̂ = g and v̂ = g², so the
  // update is lr · g / (|g| + ε): a step of almost exactly lr against the gradient's sign.
  // Without bias correction it would be lr · 0.1 / sqrt(0.05) ≈ 0.447 · lr.
  AdamWHyperParams hp;
  Tensor param = F32Tensor({1.0f, 1.0f, 1.0f});
  Tensor grad = F32Tensor({0.5f, -3.0f, 1e-8f});
  Tensor m = Tensor::Zeros({3}, DType::kF32);
  Tensor v = Tensor::Zeros({3}, DType::kF32);
  AdamWUpdate(param, grad, m, v, 0.01f, 0.0f, hp, 1);
  EXPECT_NEAR(param.data<float>()[0], 0.99f, 1e-6);
  EXPECT_NEAR(param.data<float>()[1], 1.01f, 1e-6);
  // |g| = ε: the step is halved, which tells ε sits outside the square root.
  EXPECT_NEAR(param.data<float>()[2], 0.995f, 1e-6);
}

TEST(AdamWTest, WeightDecayIsDecoupledFromTheGradient) {
  // g = 0: the moments stay zero, only the decay acts: θ ← θ − lr·λ·θ.
  AdamWHyperParams hp;
  Tensor param = F32Tensor({2.0f, -4.0f});
  Tensor grad = F32Tensor({0.0f, 0.0f});
  Tensor m = Tensor::Zeros({2}, DType::kF32);
  Tensor v = Tensor::Zeros({2}, DType::kF32);
  AdamWUpdate(param, grad, m, v, 0.1f, 0.5f, hp, 3);
  EXPECT_FLOAT_EQ(param.data<float>()[0], 2.0f * (1 - 0.05f));
  EXPECT_FLOAT_EQ(param.data<float>()[1], -4.0f * (1 - 0.05f));
  // hp.weight_decay is not the λ used: with λ = 0 passed, nothing moves.
  hp.weight_decay = 0.9f;
  AdamWUpdate(param, grad, m, v, 0.1f, 0.0f, hp, 4);
  EXPECT_FLOAT_EQ(param.data<float>()[0], 2.0f * (1 - 0.05f));
}

TEST(AdamWTest, ResultDoesNotDependOnThreadCount) {
  const int64_t n = 100003;
  std::mt19937 rng(9);
  std::vector<float> theta0(n);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (float& x : theta0) x = uniform(rng);
  const std::vector<float> g = GradientsForStep(1, n, rng);
  std::vector<Tensor> results;
  const int saved_threads = omp_get_max_threads();
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    Tensor param = F32Tensor(theta0);
    Tensor m = Tensor::Zeros({n}, DType::kF32);
    Tensor v = Tensor::Zeros({n}, DType::kF32);
    for (int64_t step = 1; step <= 3; ++step) {
      AdamWUpdate(param, F32Tensor(g), m, v, 1e-3f, 0.1f, AdamWHyperParams{}, step);
    }
    results.push_back(param);
  }
  omp_set_num_threads(saved_threads);
  EXPECT_EQ(std::memcmp(results[0].raw_data(), results[1].raw_data(), results[0].nbytes()), 0);
}

class AdamWDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(AdamWDeathTest, RejectsBadOperands) {
  Tensor param = Tensor::Zeros({4}, DType::kF32);
  Tensor m = Tensor::Zeros({4}, DType::kF32);
  Tensor v = Tensor::Zeros({4}, DType::kF32);
  Tensor short_grad = Tensor::Zeros({3}, DType::kF32);
  EXPECT_DEATH(AdamWUpdate(param, short_grad, m, v, 1e-3f, 0.0f, {}, 1),
               "grad must have param's shape \\[4\\]");
  Tensor grad64 = Tensor::Zeros({4}, DType::kF64);
  EXPECT_DEATH(AdamWUpdate(param, grad64, m, v, 1e-3f, 0.0f, {}, 1), "grad must be f32");
  Tensor grad = Tensor::Zeros({4}, DType::kF32);
  EXPECT_DEATH(AdamWUpdate(param, grad, m, v, 1e-3f, 0.0f, {}, 0), "step is 1-based");
  float storage[4];
  Tensor cuda_m = Tensor::Wrap(storage, {4}, DType::kF32, Device::Cuda(0));
  if (!CudaBackendBuilt()) {  // with the backend, tests/cuda covers CUDA tensors
    EXPECT_DEATH(AdamWUpdate(param, grad, cuda_m, v, 1e-3f, 0.0f, {}, 1),
                 "no CUDA kernel for AdamWUpdate in this build");
  }
}

}  // namespace
}  // namespace aoetron
