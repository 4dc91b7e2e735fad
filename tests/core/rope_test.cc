// RopeForward/Backward: the rotation against the formula, backward against finite differences
// (it is the vector-Jacobian product of the forward), backward ∘ forward = identity, v untouched,
// f32 against f64. RopeBackward transforms dqkv in place by contract (rope.h), so there is no
// accumulation to check.
#include "core/ops/rope.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/core/gradcheck.h"

namespace aoetron::optest {
namespace {

constexpr float kTheta = 10000.0f;

TEST(Rope, ForwardMatchesFormula) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const int64_t B = 2, T = 9, H = 3, hd = 8, half = hd / 2;
  const Tensor x = Uniform({B, T, 3, H, hd}, rng);
  Tensor y = Clone(x);
  ops::RopeForward(y, kTheta);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      for (int part = 0; part < 3; ++part) {
        for (int64_t h = 0; h < H; ++h) {
          const int64_t base = (((b * T + t) * 3 + part) * H + h) * hd;
          for (int64_t i = 0; i < half; ++i) {
            const double a = At(x, base + i), c = At(x, base + i + half);
            double lo = a, hi = c;
            if (part < 2) {  // v is not rotated
              const double angle = t * std::pow(10000.0, -2.0 * i / hd);
              lo = a * std::cos(angle) - c * std::sin(angle);
              hi = a * std::sin(angle) + c * std::cos(angle);
            }
            EXPECT_NEAR(At(y, base + i), lo, 1e-15);
            EXPECT_NEAR(At(y, base + i + half), hi, 1e-15);
          }
        }
      }
    }
  }
}

TEST(Rope, BackwardMatchesFiniteDifferences) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const Shape shape = {2, 5, 3, 2, 6};
  Tensor x = Uniform(shape, rng);
  const Tensor r = Uniform(shape, rng);
  Tensor grad = Clone(r);
  ops::RopeBackward(grad, kTheta);
  auto forward = [&] {
    Tensor y = Clone(x);
    ops::RopeForward(y, kTheta);
    return std::vector<Tensor>{y};
  };
  EXPECT_TRUE(CheckGradients(forward, {r}, {{"qkv", x, grad}}));
}

// The rotation is orthogonal: backward (rotation by −φ) undoes forward, up to rounding.
TEST(Rope, BackwardInvertsForward) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const Shape shape = {3, 300, 3, 4, 64};  // long positions: large angles
  const Tensor x = Uniform(shape, rng);
  Tensor y = Clone(x);
  ops::RopeForward(y, kTheta);
  EXPECT_FALSE(NormwiseClose("forward moved q/k", y, x, 1e-3));
  ops::RopeBackward(y, kTheta);
  // Two rotations by cos/sin rounded to f64: ~4 ulps of |x| ≤ 1.
  EXPECT_TRUE(NormwiseClose("f64 round trip", y, x, 1e-15));

  const Tensor x32 = ToF32(x);
  Tensor y32 = Clone(x32);
  ops::RopeForward(y32, kTheta);
  EXPECT_TRUE(NormwiseClose(
      "f32 forward vs f64", y32,
      [&] {
        Tensor f = Clone(x);
        ops::RopeForward(f, kTheta);
        return f;
      }(),
      3e-7));  // inputs, cos and sin each rounded to f32, then 2 products and a sum
  ops::RopeBackward(y32, kTheta);
  EXPECT_TRUE(NormwiseClose("f32 round trip", y32, x, 6e-7));
}

TEST(RopeDeathTest, RejectsOddHeadDim) {
  Tensor qkv = Tensor::Zeros({1, 2, 3, 1, 5}, DType::kF32);
  EXPECT_DEATH(ops::RopeForward(qkv, kTheta), "RopeForward: head dimension must be even");
  Tensor bad = Tensor::Zeros({1, 2, 2, 1, 4}, DType::kF32);
  EXPECT_DEATH(ops::RopeBackward(bad, kTheta), "RopeBackward: dqkv must be");
}

}  // namespace
}  // namespace aoetron::optest
