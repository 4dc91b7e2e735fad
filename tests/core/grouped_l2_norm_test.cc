// GroupedL2Norm/Backward: norms against the formula, backward against finite differences, the
// zero-norm group (zero gradient, no NaN), f32 against f64, accumulation.
#include "core/ops/grouped_l2_norm.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/core/gradcheck.h"

namespace aoetron::optest {
namespace {

TEST(GroupedL2Norm, ForwardMatchesFormula) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const int64_t n = 4, groups = 3, width = 5;
  const Tensor c = Uniform({n, groups * width}, rng);
  for (bool f32 : {false, true}) {
    const Tensor cc = f32 ? ToF32(c) : c;
    Tensor norms = Tensor::Empty({n, groups}, cc.dtype());
    ops::GroupedL2Norm(cc, width, norms);
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t g = 0; g < groups; ++g) {
        double ss = 0.0;
        for (int64_t i = 0; i < width; ++i) {
          ss += At(cc, t * groups * width + g * width + i) *
                At(cc, t * groups * width + g * width + i);
        }
        // Summed in double: the only f32 error is the final rounding (half an ulp).
        EXPECT_NEAR(At(norms, t * groups + g), std::sqrt(ss), (f32 ? 6e-8 : 1e-15) * std::sqrt(ss));
      }
    }
  }
}

TEST(GroupedL2Norm, BackwardMatchesFiniteDifferences) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (int64_t width : {1, 4, 19}) {
    const int64_t n = 3, groups = 4;
    Tensor c = Uniform({n, groups * width}, rng, 0.2, 1.0);  // away from the kink at 0
    for (int64_t i = 0; i < c.numel(); i += 2) c.data<double>()[i] *= -1.0;
    const Tensor r = Uniform({n, groups}, rng);
    Tensor norms = Tensor::Empty({n, groups}, DType::kF64), dc = ZerosLike(c);
    ops::GroupedL2Norm(c, width, norms);
    ops::GroupedL2NormBackward(r, c, norms, width, dc);
    auto forward = [&] {
      Tensor p = Tensor::Empty({n, groups}, DType::kF64);
      ops::GroupedL2Norm(c, width, p);
      return std::vector<Tensor>{p};
    };
    EXPECT_TRUE(CheckGradients(forward, {r}, {{"c", c, dc}})) << "width " << width;
  }
}

TEST(GroupedL2Norm, ZeroNormGroupGetsZeroGradient) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const int64_t n = 2, groups = 3, width = 4;
  for (bool f32 : {false, true}) {
    Tensor c = Uniform({n, groups * width}, rng);
    for (int64_t i = 0; i < width; ++i) c.data<double>()[groups * width + width + i] = 0.0;
    if (f32) c = ToF32(c);
    Tensor norms = Tensor::Empty({n, groups}, c.dtype());
    ops::GroupedL2Norm(c, width, norms);
    EXPECT_EQ(At(norms, groups + 1), 0.0);
    Tensor dnorms =
        f32 ? ToF32(Uniform({n, groups}, rng, 0.5, 1.0)) : Uniform({n, groups}, rng, 0.5, 1.0);
    Tensor dc = f32 ? ToF32(ZerosLike(c)) : ZerosLike(c);
    ops::GroupedL2NormBackward(dnorms, c, norms, width, dc);
    for (int64_t i = 0; i < dc.numel(); ++i) {
      ASSERT_FALSE(std::isnan(At(dc, i))) << "element " << i;
      const bool in_zero_group = i >= groups * width + width && i < groups * width + 2 * width;
      if (in_zero_group) {
        EXPECT_EQ(At(dc, i), 0.0) << "element " << i;
      } else {
        EXPECT_NE(At(dc, i), 0.0) << "element " << i;  // the other groups still get gradient
      }
    }
  }
}

TEST(GroupedL2Norm, F32MatchesF64AndAccumulates) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const int64_t n = 300, groups = 8, width = 24;  // above the parallel threshold
  const Tensor c = Uniform({n, groups * width}, rng), dnorms = Uniform({n, groups}, rng);
  Tensor norms = Tensor::Empty({n, groups}, DType::kF64), dc = ZerosLike(c);
  ops::GroupedL2Norm(c, width, norms);
  ops::GroupedL2NormBackward(dnorms, c, norms, width, dc);
  Tensor norms32 = Tensor::Empty({n, groups}, DType::kF32), dc32 = ToF32(ZerosLike(c));
  ops::GroupedL2Norm(ToF32(c), width, norms32);
  ops::GroupedL2NormBackward(ToF32(dnorms), ToF32(c), norms32, width, dc32);
  // Inputs rounded to f32, sums in double: a few f32 ulps.
  EXPECT_TRUE(NormwiseClose("norms", norms32, norms, 3e-7));
  EXPECT_TRUE(NormwiseClose("dc", dc32, dc, 5e-7));
  ExpectAccumulates([&] { ops::GroupedL2NormBackward(dnorms, c, norms, width, dc); }, {dc}, rng);
}

TEST(GroupedL2NormDeathTest, RejectsWidthNotDividingColumns) {
  Tensor c = Tensor::Zeros({2, 10}, DType::kF32), norms = Tensor::Zeros({2, 3}, DType::kF32);
  EXPECT_DEATH(ops::GroupedL2Norm(c, 3, norms), "GroupedL2Norm: group_width 3 must divide");
}

}  // namespace
}  // namespace aoetron::optest
