// RmsNormForward/Backward: forward against the formula, both gradients against finite
// differences, f32 against f64, accumulation, and bitwise thread-count independence of dweight
// (a reduction over rows).
#include "core/ops/rmsnorm.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>

#include "tests/core/gradcheck.h"

namespace aoetron::optest {
namespace {

constexpr float kEps = 1e-5f;

TEST(RmsNorm, ForwardMatchesFormula) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const int64_t n = 5, d = 37;
  const Tensor x = Uniform({n, d}, rng, -3.0, 3.0), w = Uniform({d}, rng, 0.5, 1.5);
  Tensor y = Tensor::Empty({n, d}, DType::kF64), rstd = Tensor::Empty({n}, DType::kF64);
  ops::RmsNormForward(x, w, kEps, y, rstd);
  for (int64_t t = 0; t < n; ++t) {
    double ss = 0.0;
    for (int64_t j = 0; j < d; ++j) ss += At(x, t * d + j) * At(x, t * d + j);
    const double r = 1.0 / std::sqrt(ss / d + static_cast<double>(kEps));
    EXPECT_NEAR(At(rstd, t), r, 1e-14 * r);
    for (int64_t j = 0; j < d; ++j) {
      const double expected = At(x, t * d + j) * r * At(w, j);
      EXPECT_NEAR(At(y, t * d + j), expected, 1e-14 * std::abs(expected) + 1e-300);
    }
  }
}

TEST(RmsNorm, BackwardMatchesFiniteDifferences) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (int64_t d : {1, 7, 33}) {
    const int64_t n = 4;
    Tensor x = Uniform({n, d}, rng), w = Uniform({d}, rng, -1.5, 1.5);
    const Tensor r = Uniform({n, d}, rng);
    Tensor y = Tensor::Empty({n, d}, DType::kF64), rstd = Tensor::Empty({n}, DType::kF64);
    ops::RmsNormForward(x, w, kEps, y, rstd);
    Tensor dx = ZerosLike(x), dw = ZerosLike(w);
    ops::RmsNormBackward(r, x, w, rstd, dx, dw);
    auto forward = [&] {
      Tensor yy = Tensor::Empty({n, d}, DType::kF64), rr = Tensor::Empty({n}, DType::kF64);
      ops::RmsNormForward(x, w, kEps, yy, rr);
      return std::vector<Tensor>{yy};
    };
    EXPECT_TRUE(CheckGradients(forward, {r}, {{"x", x, dx}, {"weight", w, dw}})) << "d = " << d;
  }
}

TEST(RmsNorm, F32MatchesF64) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const int64_t n = 100, d = 200;
  const Tensor x = Uniform({n, d}, rng), w = Uniform({d}, rng), dy = Uniform({n, d}, rng);
  Tensor y = Tensor::Empty({n, d}, DType::kF64), rstd = Tensor::Empty({n}, DType::kF64);
  Tensor dx = ZerosLike(x), dw = ZerosLike(w);
  ops::RmsNormForward(x, w, kEps, y, rstd);
  ops::RmsNormBackward(dy, x, w, rstd, dx, dw);
  const Tensor x32 = ToF32(x), w32 = ToF32(w), dy32 = ToF32(dy);
  Tensor y32 = Tensor::Empty({n, d}, DType::kF32), rstd32 = Tensor::Empty({n}, DType::kF32);
  Tensor dx32 = Tensor::Zeros({n, d}, DType::kF32), dw32 = Tensor::Zeros({d}, DType::kF32);
  ops::RmsNormForward(x32, w32, kEps, y32, rstd32);
  ops::RmsNormBackward(dy32, x32, w32, rstd32, dx32, dw32);
  // Row sums of ≤ 200 terms, dweight of 100 rows: f32 error ≲ 200·6e-8 ≈ 1e-5 worst case.
  EXPECT_TRUE(NormwiseClose("y", y32, y, 1e-5));
  EXPECT_TRUE(NormwiseClose("rstd", rstd32, rstd, 1e-5));
  EXPECT_TRUE(NormwiseClose("dx", dx32, dx, 1e-5));
  EXPECT_TRUE(NormwiseClose("dweight", dw32, dw, 1e-5));
}

TEST(RmsNorm, BackwardAccumulates) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const int64_t n = 70, d = 19;  // several row chunks
  const Tensor x = Uniform({n, d}, rng), w = Uniform({d}, rng), dy = Uniform({n, d}, rng);
  Tensor y = Tensor::Empty({n, d}, DType::kF64), rstd = Tensor::Empty({n}, DType::kF64);
  ops::RmsNormForward(x, w, kEps, y, rstd);
  Tensor dx = ZerosLike(x), dw = ZerosLike(w);
  ExpectAccumulates([&] { ops::RmsNormBackward(dy, x, w, rstd, dx, dw); }, {dx, dw}, rng);
}

// dweight sums over rows in fixed chunks: 1 and 2 threads give the same bits (f32, where a
// different summation order would show). The shape is large enough to run in parallel.
TEST(RmsNorm, ThreadCountIndependent) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const int64_t n = 1000, d = 300;
  const Tensor x = ToF32(Uniform({n, d}, rng)), w = ToF32(Uniform({d}, rng));
  const Tensor dy = ToF32(Uniform({n, d}, rng));
  std::vector<Tensor> dws, dxs, ys;
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    Tensor y = Tensor::Empty({n, d}, DType::kF32), rstd = Tensor::Empty({n}, DType::kF32);
    Tensor dx = Tensor::Zeros({n, d}, DType::kF32), dw = Tensor::Zeros({d}, DType::kF32);
    ops::RmsNormForward(x, w, kEps, y, rstd);
    ops::RmsNormBackward(dy, x, w, rstd, dx, dw);
    ys.push_back(y);
    dxs.push_back(dx);
    dws.push_back(dw);
  }
  omp_set_num_threads(saved);
  EXPECT_TRUE(BitwiseEqual("y", ys[0], ys[1]));
  EXPECT_TRUE(BitwiseEqual("dx", dxs[0], dxs[1]));
  EXPECT_TRUE(BitwiseEqual("dweight", dws[0], dws[1]));
}

TEST(RmsNormDeathTest, RejectsBadOperands) {
  Tensor x = Tensor::Zeros({2, 4}, DType::kF32), w = Tensor::Zeros({5}, DType::kF32);
  Tensor y = Tensor::Zeros({2, 4}, DType::kF32), rstd = Tensor::Zeros({2}, DType::kF32);
  EXPECT_DEATH(ops::RmsNormForward(x, w, kEps, y, rstd), "RmsNormForward: weight");
  Tensor w64 = Tensor::Zeros({4}, DType::kF64);
  EXPECT_DEATH(ops::RmsNormForward(x, w64, kEps, y, rstd), "RmsNormForward: weight must be f32");
}

}  // namespace
}  // namespace aoetron::optest
