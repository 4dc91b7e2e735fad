// BuildExpertLayout, PermuteRows, GatherExpertSlices, CombineRows and their backwards: the layout
// against its definition (stable by token, an expert with no tokens), the gathers against plain
// loops, every backward against finite differences, f32 against f64, accumulation, checks.
#include "core/ops/expert_permute.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>

#include "tests/core/gradcheck.h"

namespace aoetron::optest {
namespace {

Tensor Index(int64_t n, int64_t k, const std::vector<int32_t>& values) {
  Tensor t = Tensor::Empty({n, k}, DType::kI32);
  std::copy(values.begin(), values.end(), t.data<int32_t>());
  return t;
}

// Each token picks k distinct experts at random, as top-K does.
Tensor RandomExpertIndex(int64_t n, int64_t k, int64_t experts, std::mt19937_64& rng) {
  Tensor t = Tensor::Empty({n, k}, DType::kI32);
  std::vector<int32_t> all(experts);
  for (int64_t e = 0; e < experts; ++e) all[e] = static_cast<int32_t>(e);
  for (int64_t i = 0; i < n; ++i) {
    std::shuffle(all.begin(), all.end(), rng);
    std::copy(all.begin(), all.begin() + k, t.data<int32_t>() + i * k);
  }
  return t;
}

TEST(ExpertLayout, CountingSortStableByToken) {
  // 5 tokens, k = 2, 4 experts; expert 2 gets no tokens.
  const Tensor index = Index(5, 2, {1, 3, 0, 1, 3, 0, 1, 3, 0, 1});
  const ops::ExpertLayout layout = ops::BuildExpertLayout(index, 4);
  EXPECT_EQ(layout.num_experts, 4);
  EXPECT_EQ(layout.counts, (std::vector<int64_t>{3, 4, 0, 3}));
  EXPECT_EQ(layout.offsets, (std::vector<int64_t>{0, 3, 7, 7, 10}));
  // Expert 0: (1,0) (2,1) (4,0) → 0 1 2; expert 1: (0,0) (1,1) (3,0) (4,1) → 3 4 5 6;
  // expert 3: (0,1) (2,0) (3,1) → 7 8 9.
  const std::vector<int32_t> expected = {3, 7, 0, 4, 8, 1, 5, 9, 2, 6};
  std::vector<int32_t> got(layout.position.data<int32_t>(), layout.position.data<int32_t>() + 10);
  EXPECT_EQ(got, expected);
  EXPECT_EQ(layout.position.shape(), (Shape{5, 2}));
}

TEST(ExpertLayout, MatchesDefinitionOnRandomRouting) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const int64_t n = 1000, k = 2, experts = 9;
  const Tensor index = RandomExpertIndex(n, k, experts - 1, rng);  // expert 8 never chosen
  const ops::ExpertLayout layout = ops::BuildExpertLayout(index, experts);
  EXPECT_EQ(layout.counts[experts - 1], 0);
  EXPECT_EQ(layout.offsets[experts], n * k);
  // Walking the pairs in token order, each expert's positions are consecutive from its offset.
  std::vector<int64_t> next(layout.offsets.begin(), layout.offsets.end() - 1);
  for (int64_t p = 0; p < n * k; ++p) {
    const int32_t e = index.data<int32_t>()[p];
    ASSERT_EQ(layout.position.data<int32_t>()[p], next[e]++) << "pair " << p;
  }
  for (int64_t e = 0; e < experts; ++e) EXPECT_EQ(next[e], layout.offsets[e + 1]);
}

struct Routing {
  int64_t n, k, experts;
  Tensor index;
  ops::ExpertLayout layout;
};

Routing MakeRouting(int64_t n, int64_t k, int64_t experts, std::mt19937_64& rng) {
  Routing r{n, k, experts, RandomExpertIndex(n, k, experts, rng), {}};
  r.layout = ops::BuildExpertLayout(r.index, experts);
  return r;
}

TEST(PermuteRows, ForwardAndBackward) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const Routing routing = MakeRouting(6, 3, 5, rng);
  const int64_t d = 7, m = routing.n * routing.k;
  const Tensor& position = routing.layout.position;
  Tensor x = Uniform({routing.n, d}, rng);
  Tensor grouped = Tensor::Empty({m, d}, DType::kF64);
  ops::PermuteRows(x, position, grouped);
  for (int64_t p = 0; p < m; ++p) {
    const int64_t row = position.data<int32_t>()[p];
    for (int64_t c = 0; c < d; ++c)
      ASSERT_EQ(At(grouped, row * d + c), At(x, (p / routing.k) * d + c));
  }
  const Tensor r = Uniform({m, d}, rng);
  Tensor dx = ZerosLike(x);
  ops::PermuteRowsBackward(r, position, dx);
  auto forward = [&] {
    Tensor g = Tensor::Empty({m, d}, DType::kF64);
    ops::PermuteRows(x, position, g);
    return std::vector<Tensor>{g};
  };
  EXPECT_TRUE(CheckGradients(forward, {r}, {{"x", x, dx}}));
  ExpectAccumulates([&] { ops::PermuteRowsBackward(r, position, dx); }, {dx}, rng);
}

TEST(GatherExpertSlices, ForwardAndBackward) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const Routing routing = MakeRouting(5, 2, 4, rng);
  const int64_t r_width = 3, m = routing.n * routing.k;
  const Tensor& position = routing.layout.position;
  Tensor c = Uniform({routing.n, routing.experts * r_width}, rng);
  Tensor grouped = Tensor::Empty({m, r_width}, DType::kF64);
  ops::GatherExpertSlices(c, routing.index, position, grouped);
  for (int64_t p = 0; p < m; ++p) {
    const int64_t row = position.data<int32_t>()[p], t = p / routing.k;
    const int64_t e = routing.index.data<int32_t>()[p];
    for (int64_t i = 0; i < r_width; ++i) {
      ASSERT_EQ(At(grouped, row * r_width + i),
                At(c, t * routing.experts * r_width + e * r_width + i));
    }
  }
  const Tensor r = Uniform({m, r_width}, rng);
  Tensor dc = ZerosLike(c);
  ops::GatherExpertSlicesBackward(r, routing.index, position, dc);
  auto forward = [&] {
    Tensor g = Tensor::Empty({m, r_width}, DType::kF64);
    ops::GatherExpertSlices(c, routing.index, position, g);
    return std::vector<Tensor>{g};
  };
  // Unselected experts' slices get exactly zero (covered: their FD is 0, checked elementwise).
  EXPECT_TRUE(CheckGradients(forward, {r}, {{"c", c, dc}}));
  ExpectAccumulates([&] { ops::GatherExpertSlicesBackward(r, routing.index, position, dc); }, {dc},
                    rng);
}

TEST(CombineRows, ForwardAndBackward) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const Routing routing = MakeRouting(6, 2, 4, rng);
  const int64_t d = 9, m = routing.n * routing.k;
  const Tensor& position = routing.layout.position;
  Tensor expert_out = Uniform({m, d}, rng),
         weights = Uniform({routing.n, routing.k}, rng, 0.0, 1.0);
  Tensor y = Tensor::Empty({routing.n, d}, DType::kF64);
  ops::CombineRows(expert_out, position, weights, y);
  for (int64_t t = 0; t < routing.n; ++t) {
    for (int64_t c = 0; c < d; ++c) {
      double expected = 0.0;
      for (int64_t j = 0; j < routing.k; ++j) {
        const int64_t row = position.data<int32_t>()[t * routing.k + j];
        expected += At(weights, t * routing.k + j) * At(expert_out, row * d + c);
      }
      ASSERT_NEAR(At(y, t * d + c), expected, 1e-15);
    }
  }
  const Tensor r = Uniform({routing.n, d}, rng);
  Tensor d_expert_out = ZerosLike(expert_out), dweights = ZerosLike(weights);
  ops::CombineRowsBackward(r, expert_out, position, weights, d_expert_out, dweights);
  auto forward = [&] {
    Tensor yy = Tensor::Empty({routing.n, d}, DType::kF64);
    ops::CombineRows(expert_out, position, weights, yy);
    return std::vector<Tensor>{yy};
  };
  EXPECT_TRUE(CheckGradients(
      forward, {r}, {{"expert_out", expert_out, d_expert_out}, {"weights", weights, dweights}}));
  ExpectAccumulates(
      [&] { ops::CombineRowsBackward(r, expert_out, position, weights, d_expert_out, dweights); },
      {d_expert_out, dweights}, rng);
}

// The three data movers at a training-like size, f32 against f64 and 1 against 2 threads.
TEST(ExpertPermute, F32MatchesF64AndThreadCountIndependent) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const Routing routing = MakeRouting(512, 2, 8, rng);
  const int64_t d = 96, r_width = 16, m = routing.n * routing.k;
  const Tensor& position = routing.layout.position;
  const Tensor x = Uniform({routing.n, d}, rng), c = Uniform({routing.n, 8 * r_width}, rng);
  const Tensor expert_out = Uniform({m, d}, rng), weights = Uniform({routing.n, 2}, rng);
  const Tensor dy = Uniform({routing.n, d}, rng);
  auto run = [&](bool f32) {
    auto cv = [&](const Tensor& t) { return f32 ? ToF32(t) : Clone(t); };
    const DType dt = f32 ? DType::kF32 : DType::kF64;
    Tensor grouped = Tensor::Empty({m, d}, dt), slices = Tensor::Empty({m, r_width}, dt);
    Tensor y = Tensor::Empty({routing.n, d}, dt);
    Tensor dx = cv(ZerosLike(x)), dc = cv(ZerosLike(c));
    Tensor deo = cv(ZerosLike(expert_out)), dw = cv(ZerosLike(weights));
    ops::PermuteRows(cv(x), position, grouped);
    ops::GatherExpertSlices(cv(c), routing.index, position, slices);
    ops::CombineRows(cv(expert_out), position, cv(weights), y);
    ops::PermuteRowsBackward(cv(expert_out), position, dx);
    ops::GatherExpertSlicesBackward(slices, routing.index, position, dc);
    ops::CombineRowsBackward(cv(dy), cv(expert_out), position, cv(weights), deo, dw);
    return std::vector<Tensor>{grouped, slices, y, dx, dc, deo, dw};
  };
  const std::vector<Tensor> f64 = run(false), f32 = run(true);
  const char* names[] = {"grouped", "slices", "y", "dx", "dc", "d_expert_out", "dweights"};
  // Copies, 2-term sums and 96-term dot products (dweights) of values ≤ 1 in f32.
  for (size_t i = 0; i < f64.size(); ++i)
    EXPECT_TRUE(NormwiseClose(names[i], f32[i], f64[i], 2e-6));
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<Tensor> one = run(true);
  omp_set_num_threads(2);
  const std::vector<Tensor> two = run(true);
  omp_set_num_threads(saved);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(BitwiseEqual(names[i], one[i], two[i]));
}

TEST(ExpertPermuteDeathTest, RejectsBadRouting) {
  EXPECT_DEATH(ops::BuildExpertLayout(Index(2, 2, {0, 1, 4, 0}), 4),
               "BuildExpertLayout: expert_index\\[2\\] = 4 is outside \\[0, 4\\)");
  Tensor x = Tensor::Zeros({2, 3}, DType::kF32), out = Tensor::Zeros({4, 3}, DType::kF32);
  EXPECT_DEATH(ops::PermuteRows(x, Index(2, 2, {0, 1, 1, 3}), out),
               "PermuteRows: position .* is not a permutation");
  Tensor short_out = Tensor::Zeros({3, 3}, DType::kF32);
  EXPECT_DEATH(ops::PermuteRows(x, Index(2, 2, {0, 1, 2, 3}), short_out),
               "PermuteRows: out must have shape \\[4, 3\\]");
}

}  // namespace
}  // namespace aoetron::optest
