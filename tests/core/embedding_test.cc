// EmbeddingForward/Backward: lookup, table gradient against finite differences (with repeated
// ids, which must add up), f32 against f64, accumulation, thread independence, id checks.
#include "core/ops/embedding.h"

#include <gtest/gtest.h>
#include <omp.h>

#include "tests/core/gradcheck.h"

namespace aoetron::optest {
namespace {

Tensor Ids(const std::vector<int32_t>& values) {
  Tensor t = Tensor::Empty({static_cast<int64_t>(values.size())}, DType::kI32);
  for (size_t i = 0; i < values.size(); ++i) t.data<int32_t>()[i] = values[i];
  return t;
}

Tensor RandomIds(int64_t n, int32_t vocab, std::mt19937_64& rng) {
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids) id = dist(rng);
  return Ids(ids);
}

TEST(Embedding, ForwardGathersRows) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const Tensor table = Uniform({6, 5}, rng);
  const Tensor ids = Ids({5, 0, 5, 2});
  Tensor out = Tensor::Empty({4, 5}, DType::kF64);
  ops::EmbeddingForward(ids, table, out);
  for (int64_t t = 0; t < 4; ++t) {
    for (int64_t c = 0; c < 5; ++c) {
      EXPECT_EQ(At(out, t * 5 + c), At(table, ids.data<int32_t>()[t] * 5 + c));
    }
  }
}

TEST(Embedding, BackwardMatchesFiniteDifferences) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  Tensor table = Uniform({7, 70}, rng);        // 70 columns: more than one column block of 64
  const Tensor ids = Ids({3, 1, 3, 6, 3, 0});  // id 3 three times; ids 2, 4, 5 unused
  const Tensor r = Uniform({6, 70}, rng);
  Tensor dtable = ZerosLike(table);
  ops::EmbeddingBackward(ids, r, dtable);
  auto forward = [&] {
    Tensor out = Tensor::Empty({6, 70}, DType::kF64);
    ops::EmbeddingForward(ids, table, out);
    return std::vector<Tensor>{out};
  };
  EXPECT_TRUE(CheckGradients(forward, {r}, {{"table", table, dtable}}));
  for (int64_t c = 0; c < 70; ++c) EXPECT_EQ(At(dtable, 2 * 70 + c), 0.0);  // unused row
}

TEST(Embedding, F32MatchesF64AndAccumulates) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const Tensor ids = RandomIds(300, 11, rng);
  const Tensor table = Uniform({11, 40}, rng), dout = Uniform({300, 40}, rng);
  Tensor out = Tensor::Empty({300, 40}, DType::kF64), dtable = ZerosLike(table);
  ops::EmbeddingForward(ids, table, out);
  ops::EmbeddingBackward(ids, dout, dtable);
  Tensor out32 = Tensor::Empty({300, 40}, DType::kF32), dtable32 = ToF32(ZerosLike(table));
  ops::EmbeddingForward(ids, ToF32(table), out32);
  ops::EmbeddingBackward(ids, ToF32(dout), dtable32);
  EXPECT_TRUE(NormwiseClose("out", out32, out, 6e-8));  // a copy: only the f32 rounding
  // Each row sums ~27 values of size ≤ 1: f32 error ≲ 27·6e-8 relative to the largest sum.
  EXPECT_TRUE(NormwiseClose("dtable", dtable32, dtable, 2e-6));
  ExpectAccumulates([&] { ops::EmbeddingBackward(ids, dout, dtable); }, {dtable}, rng);
}

TEST(Embedding, BackwardThreadCountIndependent) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const Tensor ids = RandomIds(4096, 50, rng);
  const Tensor dout = ToF32(Uniform({4096, 96}, rng));
  std::vector<Tensor> results;
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    Tensor dtable = Tensor::Zeros({50, 96}, DType::kF32);
    ops::EmbeddingBackward(ids, dout, dtable);
    results.push_back(dtable);
  }
  omp_set_num_threads(saved);
  EXPECT_TRUE(BitwiseEqual("dtable", results[0], results[1]));
}

TEST(EmbeddingDeathTest, RejectsIdOutsideTable) {
  Tensor table = Tensor::Zeros({4, 3}, DType::kF32), out = Tensor::Zeros({2, 3}, DType::kF32);
  EXPECT_DEATH(ops::EmbeddingForward(Ids({1, 4}), table, out),
               "EmbeddingForward: ids\\[1\\] = 4 is outside");
  EXPECT_DEATH(ops::EmbeddingBackward(Ids({-1, 0}), out, table),
               "EmbeddingBackward: ids\\[0\\] = -1 is outside");
}

}  // namespace
}  // namespace aoetron::optest
