// SwiGluForward/Backward: forward against the formula (including saturated gates), both
// gradients against finite differences, f32 against f64, accumulation.
#include "core/ops/swiglu.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/core/gradcheck.h"

namespace aoetron::optest {
namespace {

TEST(SwiGlu, ForwardMatchesFormula) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  Tensor gate = Uniform({7, 33}, rng, -8.0, 8.0);
  gate.data<double>()[0] = -200.0;  // e^200 overflows nothing in f64, σ → 0
  gate.data<double>()[1] = 200.0;
  const Tensor up = Uniform({7, 33}, rng);
  for (bool f32 : {false, true}) {
    const Tensor g = f32 ? ToF32(gate) : gate, u = f32 ? ToF32(up) : up;
    Tensor out = Tensor::Empty({7, 33}, g.dtype());
    ops::SwiGluForward(g, u, out);
    for (int64_t i = 0; i < out.numel(); ++i) {
      const double z = At(g, i);
      const double expected = z / (1.0 + std::exp(-z)) * At(u, i);
      // f64: a few ulps. f32: the vectorised exp (≈1 ulp) plus 3 roundings; results below f32's
      // normal range (gate −200: ≈ 1e-85) flush to zero.
      const double tol = f32 ? 5e-7 : 1e-15;
      const double floor = f32 ? 1e-37 : 1e-300;
      ASSERT_NEAR(At(out, i), expected, tol * std::abs(expected) + floor)
          << (f32 ? "f32" : "f64") << " element " << i << " gate " << z;
    }
  }
}

TEST(SwiGlu, BackwardMatchesFiniteDifferences) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  Tensor gate = Uniform({5, 13}, rng, -6.0, 6.0), up = Uniform({5, 13}, rng);
  const Tensor r = Uniform({5, 13}, rng);
  Tensor dgate = ZerosLike(gate), dup = ZerosLike(up);
  ops::SwiGluBackward(r, gate, up, dgate, dup);
  auto forward = [&] {
    Tensor out = Tensor::Empty({5, 13}, DType::kF64);
    ops::SwiGluForward(gate, up, out);
    return std::vector<Tensor>{out};
  };
  EXPECT_TRUE(CheckGradients(forward, {r}, {{"gate", gate, dgate}, {"up", up, dup}}));
}

TEST(SwiGlu, F32MatchesF64AndAccumulates) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const Shape shape = {64, 300};  // above the parallel threshold
  const Tensor gate = Uniform(shape, rng, -10.0, 10.0), up = Uniform(shape, rng);
  const Tensor dout = Uniform(shape, rng);
  Tensor out = Tensor::Empty(shape, DType::kF64), dgate = ZerosLike(gate), dup = ZerosLike(up);
  ops::SwiGluForward(gate, up, out);
  ops::SwiGluBackward(dout, gate, up, dgate, dup);
  Tensor out32 = Tensor::Empty(shape, DType::kF32);
  Tensor dgate32 = ToF32(ZerosLike(gate)), dup32 = ToF32(ZerosLike(up));
  ops::SwiGluForward(ToF32(gate), ToF32(up), out32);
  ops::SwiGluBackward(ToF32(dout), ToF32(gate), ToF32(up), dgate32, dup32);
  // Elementwise math, no sums: a handful of f32 roundings plus the input rounding amplified by
  // |g·σ'(g)| ≲ 10 → ≲ 1e-6 normwise.
  EXPECT_TRUE(NormwiseClose("out", out32, out, 1e-6));
  EXPECT_TRUE(NormwiseClose("dgate", dgate32, dgate, 1e-6));
  EXPECT_TRUE(NormwiseClose("dup", dup32, dup, 1e-6));
  ExpectAccumulates([&] { ops::SwiGluBackward(dout, gate, up, dgate, dup); }, {dgate, dup}, rng);
}

TEST(SwiGluDeathTest, RejectsShapeMismatch) {
  Tensor a = Tensor::Zeros({2, 3}, DType::kF32), b = Tensor::Zeros({3, 2}, DType::kF32);
  Tensor out = Tensor::Zeros({2, 3}, DType::kF32);
  EXPECT_DEATH(ops::SwiGluForward(a, b, out), "SwiGluForward: up must have shape \\[2, 3\\]");
}

}  // namespace
}  // namespace aoetron::optest
