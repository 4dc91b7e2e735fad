// RowSoftmaxForward/Backward: forward against the formula (including large inputs), backward
// against finite differences, f32 against f64, accumulation.
#include "core/ops/softmax.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/core/gradcheck.h"

namespace aoetron::optest {
namespace {

TEST(RowSoftmax, ForwardMatchesFormula) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const int64_t n = 6, m = 8;
  Tensor x = Uniform({n, m}, rng, -4.0, 4.0);
  for (int64_t j = 0; j < m; ++j) x.data<double>()[m + j] += 800.0;  // e^800 overflows f64
  for (bool f32 : {false, true}) {
    const Tensor xx = f32 ? ToF32(x) : x;
    Tensor y = Tensor::Empty({n, m}, xx.dtype());
    ops::RowSoftmaxForward(xx, y);
    for (int64_t t = 0; t < n; ++t) {
      double max = -1e300, sum = 0.0;
      for (int64_t j = 0; j < m; ++j) max = std::max(max, At(xx, t * m + j));
      for (int64_t j = 0; j < m; ++j) sum += std::exp(At(xx, t * m + j) - max);
      for (int64_t j = 0; j < m; ++j) {
        const double expected = std::exp(At(xx, t * m + j) - max) / sum;
        // f32: exp ≈ 1 ulp, the sum of 8 terms and the division: well inside 5e-7 relative.
        EXPECT_NEAR(At(y, t * m + j), expected, (f32 ? 5e-7 : 1e-15) * expected)
            << (f32 ? "f32" : "f64") << " row " << t << " column " << j;
      }
    }
  }
}

TEST(RowSoftmax, BackwardMatchesFiniteDifferences) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (int64_t m : {1, 2, 8, 21}) {
    const int64_t n = 3;
    Tensor x = Uniform({n, m}, rng, -3.0, 3.0);
    const Tensor r = Uniform({n, m}, rng);
    Tensor y = Tensor::Empty({n, m}, DType::kF64), dx = ZerosLike(x);
    ops::RowSoftmaxForward(x, y);
    ops::RowSoftmaxBackward(r, y, dx);
    auto forward = [&] {
      Tensor yy = Tensor::Empty({n, m}, DType::kF64);
      ops::RowSoftmaxForward(x, yy);
      return std::vector<Tensor>{yy};
    };
    EXPECT_TRUE(CheckGradients(forward, {r}, {{"x", x, dx}})) << "m = " << m;
  }
}

TEST(RowSoftmax, F32MatchesF64AndAccumulates) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const int64_t n = 2048, m = 16;  // above the parallel threshold
  const Tensor x = Uniform({n, m}, rng, -5.0, 5.0), dy = Uniform({n, m}, rng);
  Tensor y = Tensor::Empty({n, m}, DType::kF64), dx = ZerosLike(x);
  ops::RowSoftmaxForward(x, y);
  ops::RowSoftmaxBackward(dy, y, dx);
  Tensor y32 = Tensor::Empty({n, m}, DType::kF32), dx32 = ToF32(ZerosLike(x));
  ops::RowSoftmaxForward(ToF32(x), y32);
  ops::RowSoftmaxBackward(ToF32(dy), y32, dx32);
  // Inputs rounded to f32 (|x| ≤ 5: 5·6e-8 relative in e^x) plus a 16-term sum: ≲ 1e-6.
  EXPECT_TRUE(NormwiseClose("y", y32, y, 2e-6));
  EXPECT_TRUE(NormwiseClose("dx", dx32, dx, 2e-6));
  ExpectAccumulates([&] { ops::RowSoftmaxBackward(dy, y, dx); }, {dx}, rng);
}

TEST(RowSoftmaxDeathTest, RejectsShapeMismatch) {
  Tensor x = Tensor::Zeros({2, 3}, DType::kF32), y = Tensor::Zeros({2, 4}, DType::kF32);
  EXPECT_DEATH(ops::RowSoftmaxForward(x, y), "RowSoftmaxForward: y must have shape \\[2, 3\\]");
}

}  // namespace
}  // namespace aoetron::optest
