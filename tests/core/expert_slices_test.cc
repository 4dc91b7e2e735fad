// TakeExpertSlices (+ backward on an expert block), ExpertSliceProduct, CopyColumns and
// AddColumns against their formulas, in f64 and f32, including thread-count independence.
#include "core/ops/expert_slices.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

#include "core/ops/column_block.h"
#include "core/ops/gemm.h"
#include "tests/core/gradcheck.h"

namespace aoetron::optest {
namespace {

// K distinct experts per token, i32 [n, k].
Tensor RandomIndex(std::mt19937_64& rng, int64_t n, int64_t k, int64_t experts) {
  Tensor index = Tensor::Empty({n, k}, DType::kI32);
  std::vector<int32_t> all(experts);
  for (int64_t t = 0; t < n; ++t) {
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    for (int64_t j = 0; j < k; ++j) index.data<int32_t>()[t * k + j] = all[j];
  }
  return index;
}

TEST(ExpertSlices, TakeAndBlockBackward) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const int64_t n = 9, k = 3, experts = 7, r = 4;
  const Tensor c = Uniform({n, experts * r}, rng);
  const Tensor index = RandomIndex(rng, n, k, experts);
  Tensor slots = Tensor::Empty({n, k * r}, DType::kF64);
  ops::TakeExpertSlices(c, index, slots);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = index.data<int32_t>()[t * k + j];
      for (int64_t i = 0; i < r; ++i) {
        EXPECT_EQ(At(slots, (t * k + j) * r + i), At(c, (t * experts + e) * r + i));
      }
    }
  }
  // Backward over blocks [0, 3), [3, 6), [6, 7) equals the whole backward.
  const Tensor dslots = Uniform({n, k * r}, rng);
  Tensor whole = Uniform({n, experts * r}, rng);
  const Tensor start = Clone(whole);
  ops::TakeExpertSlicesBackward(dslots, index, experts, 0, whole);
  for (int64_t e0 = 0; e0 < experts; e0 += 3) {
    const int64_t b = std::min<int64_t>(3, experts - e0);
    Tensor block = Tensor::Empty({n, b * r}, DType::kF64);
    ops::CopyColumns(start, e0 * r, block, 0, b * r);
    ops::TakeExpertSlicesBackward(dslots, index, experts, e0, block);
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t i = 0; i < b * r; ++i) {
        EXPECT_EQ(At(block, t * b * r + i), At(whole, t * experts * r + e0 * r + i));
      }
    }
  }
}

TEST(ExpertSlices, ProductMatchesTheGemmSlices) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const int64_t n = 37, k = 3, experts = 11, r = 5, d = 13;  // 111 pairs: ragged tiles
  const Tensor x = Uniform({n, d}, rng), w = Uniform({d, experts * r}, rng);
  const Tensor index = RandomIndex(rng, n, k, experts);
  Tensor c = Tensor::Empty({n, experts * r}, DType::kF64);
  ops::Gemm(x, false, w, false, c);  // the f64 reference loop: the same sum order
  Tensor want = Tensor::Empty({n, k * r}, DType::kF64);
  ops::TakeExpertSlices(c, index, want);
  Tensor got = Tensor::Empty({n, k * r}, DType::kF64);
  ops::ExpertSliceProduct(x, w, index, got);
  for (int64_t i = 0; i < got.numel(); ++i) EXPECT_NEAR(At(got, i), At(want, i), 1e-14);
  // f32: close to f64, and the same bits for 1 and 2 threads.
  Tensor f32_1 = Tensor::Empty({n, k * r}, DType::kF32);
  Tensor f32_2 = Tensor::Empty({n, k * r}, DType::kF32);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  ops::ExpertSliceProduct(ToF32(x), ToF32(w), index, f32_1);
  omp_set_num_threads(2);
  ops::ExpertSliceProduct(ToF32(x), ToF32(w), index, f32_2);
  omp_set_num_threads(threads);
  EXPECT_EQ(std::memcmp(f32_1.data<float>(), f32_2.data<float>(), f32_1.nbytes()), 0);
  for (int64_t i = 0; i < got.numel(); ++i) EXPECT_NEAR(At(f32_1, i), At(want, i), 1e-5);
}

TEST(ColumnBlock, CopyAndAdd) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const Tensor src = Uniform({4, 10}, rng);
  Tensor dst = Uniform({4, 6}, rng);
  const Tensor before = Clone(dst);
  ops::AddColumns(src, 5, dst, 1, 3);
  for (int64_t row = 0; row < 4; ++row) {
    for (int64_t col = 0; col < 6; ++col) {
      const double add = (col >= 1 && col < 4) ? At(src, row * 10 + 5 + col - 1) : 0.0;
      EXPECT_EQ(At(dst, row * 6 + col), At(before, row * 6 + col) + add);
    }
  }
  ops::CopyColumns(src, 2, dst, 0, 6);
  for (int64_t row = 0; row < 4; ++row) {
    for (int64_t col = 0; col < 6; ++col)
      EXPECT_EQ(At(dst, row * 6 + col), At(src, row * 10 + 2 + col));
  }
}

}  // namespace
}  // namespace aoetron::optest
