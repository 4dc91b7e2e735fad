// AdamWOptimizer over a hand-built ParameterSet: per-parameter decay, moment layout, and the
// update against a double-precision reference.
#include "launcher/adamw_optimizer.h"

#include <gtest/gtest.h>

#include <cmath>

namespace aoetron {
namespace {

// "w" [2, 3] takes weight decay; "norm.weight" [3] does not.
ParameterSet MakeParams() {
  ParameterSet params;
  Parameter w;
  w.name = "w";
  w.global_shape = {2, 3};
  params.Add(w);
  Parameter norm;
  norm.name = "norm.weight";
  norm.global_shape = {3};
  norm.weight_decay = false;
  params.Add(norm);
  params.Allocate();
  float* values = params.flat_values().data<float>();
  for (int i = 0; i < 9; ++i) values[i] = 0.5f + 0.25f * static_cast<float>(i);
  params.ZeroGrads();
  return params;
}

TEST(AdamWOptimizerTest, ZeroGradientDecaysOnlyParametersThatTakeDecay) {
  ParameterSet params = MakeParams();
  AdamWHyperParams hp;
  hp.weight_decay = 0.5f;
  AdamWOptimizer optimizer(&params, hp);
  const float lr = 0.1f;
  optimizer.Step(lr);
  // With g = 0 the Adam term is 0: θ ← θ − lr·λ·θ for "w", θ unchanged for the norm weight.
  const float* w = params[0].value.data<float>();
  const float* norm = params[1].value.data<float>();
  for (int i = 0; i < 6; ++i) {
    const float before = 0.5f + 0.25f * static_cast<float>(i);
    EXPECT_FLOAT_EQ(w[i], before * (1.0f - lr * 0.5f)) << i;
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_FLOAT_EQ(norm[i], 0.5f + 0.25f * static_cast<float>(6 + i)) << i;
  }
  EXPECT_EQ(optimizer.steps_taken(), 1);
}

TEST(AdamWOptimizerTest, MatchesADoublePrecisionReferenceOverSteps) {
  ParameterSet params = MakeParams();
  AdamWHyperParams hp;
  hp.beta1 = 0.8f;
  hp.beta2 = 0.9f;
  hp.eps = 1e-6f;
  hp.weight_decay = 0.1f;
  AdamWOptimizer optimizer(&params, hp);
  double theta[9], m[9] = {}, v[9] = {};
  for (int i = 0; i < 9; ++i) theta[i] = 0.5 + 0.25 * i;
  const double lrs[3] = {0.01, 0.02, 0.005};
  for (int step = 1; step <= 3; ++step) {
    float* grads = params.flat_grads().data<float>();
    for (int i = 0; i < 9; ++i) grads[i] = static_cast<float>(std::sin(1.3 * i + step) * 0.1);
    optimizer.Step(lrs[step - 1]);
    for (int i = 0; i < 9; ++i) {
      const double g = static_cast<float>(std::sin(1.3 * i + step) * 0.1);
      const double decay = i < 6 ? 0.1 : 0.0;
      m[i] = 0.8 * m[i] + 0.2 * g;
      v[i] = 0.9 * v[i] + 0.1 * g * g;
      const double m_hat = m[i] / (1 - std::pow(0.8, step));
      const double v_hat = v[i] / (1 - std::pow(0.9, step));
      theta[i] -= lrs[step - 1] * (m_hat / (std::sqrt(v_hat) + 1e-6) + decay * theta[i]);
    }
  }
  const float* values = params.flat_values().data<float>();
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(values[i], theta[i], 1e-5) << i;
  // The moments are laid out like the value buffer: element i of either is parameter
  // element i.
  for (int i = 0; i < 9; ++i) {
    EXPECT_NEAR(optimizer.flat_m().data<float>()[i], m[i], 1e-6) << i;
    EXPECT_NEAR(optimizer.flat_v().data<float>()[i], v[i], 1e-7) << i;
  }
  EXPECT_EQ(optimizer.steps_taken(), 3);
}

TEST(AdamWOptimizerTest, MomentsStartAtZero) {
  ParameterSet params = MakeParams();
  AdamWOptimizer optimizer(&params, AdamWHyperParams());
  ASSERT_EQ(optimizer.flat_m().numel(), 9);
  ASSERT_EQ(optimizer.flat_v().numel(), 9);
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(optimizer.flat_m().data<float>()[i], 0.0f);
    EXPECT_EQ(optimizer.flat_v().data<float>()[i], 0.0f);
  }
}

}  // namespace
}  // namespace aoetron
