// TopK/TopKBackward: selection against a stable-sort reference, ties (lower index wins, also at
// the k-th place), k = 1 and k = n, NaN rejection, backward against finite differences,
// accumulation.
#include "core/ops/topk.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "tests/core/gradcheck.h"

namespace aoetron::optest {
namespace {

Tensor Scores(int64_t n, int64_t m, const std::vector<double>& values) {
  Tensor t = Tensor::Empty({n, m}, DType::kF64);
  std::copy(values.begin(), values.end(), t.data<double>());
  return t;
}

// Indices of row `row` sorted by descending score, ties by ascending index (a stable sort).
std::vector<int32_t> ReferenceOrder(const Tensor& scores, int64_t row) {
  const int64_t m = scores.dim(1);
  std::vector<int32_t> order(m);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return At(scores, row * m + a) > At(scores, row * m + b);
  });
  return order;
}

void ExpectMatchesReference(const Tensor& scores, int64_t k) {
  const int64_t n = scores.dim(0), m = scores.dim(1);
  Tensor values = Tensor::Empty({n, k}, scores.dtype()),
         indices = Tensor::Empty({n, k}, DType::kI32);
  ops::TopK(scores, k, values, indices);
  for (int64_t t = 0; t < n; ++t) {
    const std::vector<int32_t> order = ReferenceOrder(scores, t);
    for (int64_t j = 0; j < k; ++j) {
      ASSERT_EQ(indices.data<int32_t>()[t * k + j], order[j])
          << "row " << t << " place " << j << " (k = " << k << ", m = " << m << ")";
      ASSERT_EQ(At(values, t * k + j), At(scores, t * m + order[j]));
    }
  }
}

TEST(TopK, MatchesStableSortReference) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (int64_t m : {1, 2, 8, 64}) {
    for (int64_t k : {int64_t{1}, std::min<int64_t>(2, m), m}) {
      // 1000 rows: enough to take the parallel path. Scores drawn from 5 levels: many ties.
      Tensor scores = Uniform({1000, m}, rng);
      for (int64_t i = 0; i < scores.numel(); ++i) {
        scores.data<double>()[i] = std::floor(5.0 * scores.data<double>()[i]);
      }
      ExpectMatchesReference(scores, k);
      ExpectMatchesReference(ToF32(scores), k);
      ExpectMatchesReference(Uniform({50, m}, rng), k);  // distinct scores
    }
  }
}

TEST(TopK, TiesGoToTheLowerIndex) {
  struct Case {
    std::vector<double> row;
    int64_t k;
    std::vector<int32_t> expected;
  };
  const double inf = std::numeric_limits<double>::infinity();
  const Case cases[] = {
      {{1, 3, 3, 2, 3}, 2, {1, 2}},  // three-way tie for first: first two indices
      {{5, 2, 2, 2}, 2, {0, 1}},     // tie exactly at the k-th place
      {{5, 2, 2, 2}, 3, {0, 1, 2}},  // ... and one place later
      {{0, 0, 0, 0}, 3, {0, 1, 2}},  // all equal
      {{1, 4, 1, 4, 1}, 4, {1, 3, 0, 2}}, {{-inf, 2, -inf, inf}, 3, {3, 1, 0}},
      {{-0.0, 0.0, 1}, 2, {2, 0}},  // −0 == +0: a tie, lower index first
  };
  for (const Case& c : cases) {
    const int64_t m = static_cast<int64_t>(c.row.size());
    const Tensor scores = Scores(1, m, c.row);
    Tensor values = Tensor::Empty({1, c.k}, DType::kF64),
           indices = Tensor::Empty({1, c.k}, DType::kI32);
    ops::TopK(scores, c.k, values, indices);
    std::vector<int32_t> got(indices.data<int32_t>(), indices.data<int32_t>() + c.k);
    EXPECT_EQ(got, c.expected);
  }
}

TEST(TopK, BackwardMatchesFiniteDifferences) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const int64_t n = 5, m = 8, k = 3;
  // Scores 0.1 apart (a shuffled ladder plus small noise): a step of 1e-6 never reorders them.
  Tensor scores = Tensor::Empty({n, m}, DType::kF64);
  for (int64_t t = 0; t < n; ++t) {
    std::vector<int> ladder(m);
    std::iota(ladder.begin(), ladder.end(), 0);
    std::shuffle(ladder.begin(), ladder.end(), rng);
    for (int64_t j = 0; j < m; ++j) {
      scores.data<double>()[t * m + j] = 0.1 * ladder[j] + 0.01 * At(Uniform({1}, rng), 0);
    }
  }
  const Tensor r = Uniform({n, k}, rng);
  Tensor values = Tensor::Empty({n, k}, DType::kF64), indices = Tensor::Empty({n, k}, DType::kI32);
  ops::TopK(scores, k, values, indices);
  Tensor dscores = ZerosLike(scores);
  ops::TopKBackward(r, indices, dscores);
  auto forward = [&] {
    Tensor v = Tensor::Empty({n, k}, DType::kF64), i = Tensor::Empty({n, k}, DType::kI32);
    ops::TopK(scores, k, v, i);
    return std::vector<Tensor>{v};
  };
  EXPECT_TRUE(CheckGradients(forward, {r}, {{"scores", scores, dscores}}));
  // The f32 path selects the same entries (the scores are 0.1 apart) and routes the same values.
  Tensor values32 = Tensor::Empty({n, k}, DType::kF32),
         indices32 = Tensor::Empty({n, k}, DType::kI32);
  ops::TopK(ToF32(scores), k, values32, indices32);
  EXPECT_TRUE(BitwiseEqual("indices f32 vs f64", indices32, indices));
  Tensor dscores32 = Tensor::Zeros({n, m}, DType::kF32);
  ops::TopKBackward(ToF32(r), indices32, dscores32);
  EXPECT_TRUE(NormwiseClose("dscores f32 vs f64", dscores32, dscores, 6e-8));  // one rounding
  ExpectAccumulates([&] { ops::TopKBackward(r, indices, dscores); }, {dscores}, rng);
}

TEST(TopKDeathTest, NaNScoreIsFatal) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor scores = Scores(2, 3, {0, 1, 2, 3, nan, 5});
  Tensor values = Tensor::Empty({2, 1}, DType::kF64), indices = Tensor::Empty({2, 1}, DType::kI32);
  EXPECT_DEATH(ops::TopK(scores, 1, values, indices), "TopK: scores\\[1, 1\\] is NaN");
  Tensor values32 = Tensor::Empty({2, 1}, DType::kF32);
  EXPECT_DEATH(ops::TopK(ToF32(scores), 1, values32, indices), "TopK: scores\\[1, 1\\] is NaN");
}

TEST(TopKDeathTest, RejectsBadK) {
  Tensor scores = Tensor::Zeros({2, 3}, DType::kF32);
  Tensor values = Tensor::Empty({2, 4}, DType::kF32), indices = Tensor::Empty({2, 4}, DType::kI32);
  EXPECT_DEATH(ops::TopK(scores, 4, values, indices), "TopK: k = 4 must lie in \\[1, 3\\]");
}

}  // namespace
}  // namespace aoetron::optest
