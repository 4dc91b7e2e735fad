// The arithmetic of the deterministic reductions, and the single-process communicator.
#include "parallel/rank_order_reduction.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "parallel/single_process_communicator.h"

namespace aoetron::parallel {
namespace {

TEST(RankOrderReductionTest, SumIsLeftToRightInRankOrder) {
  // 1e8 + 1 - 1e8 in f32: (1e8 + 1) rounds back to 1e8, so left to right gives 0, while
  // 1e8 - 1e8 + 1 would give 1. The order is the contract.
  std::vector<float> c0 = {1e8f, 1.0f}, c1 = {1.0f, 1e8f}, c2 = {-1e8f, -1e8f};
  std::vector<float> out(2);
  const void* contributions[] = {c0.data(), c1.data(), c2.data()};
  ReduceInRankOrder(ReduceOp::kSum, DType::kF32, contributions, out.data(), 2);
  EXPECT_EQ(out[0], (1e8f + 1.0f) + -1e8f);
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_EQ(out[1], (1.0f + 1e8f) + -1e8f);
}

TEST(RankOrderReductionTest, MaxPropagatesNaNAndIntegersWrap) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> a = {1.0f, nan, -3.0f}, b = {nan, 2.0f, -4.0f};
  std::vector<float> out(3);
  const void* contributions[] = {a.data(), b.data()};
  ReduceInRankOrder(ReduceOp::kMax, DType::kF32, contributions, out.data(), 3);
  EXPECT_TRUE(std::isnan(out[0]));
  EXPECT_TRUE(std::isnan(out[1]));
  EXPECT_EQ(out[2], -3.0f);

  std::vector<int32_t> x = {std::numeric_limits<int32_t>::max(), 5}, y = {1, -7};
  std::vector<int32_t> sum(2);
  const void* ints[] = {x.data(), y.data()};
  ReduceInRankOrder(ReduceOp::kSum, DType::kI32, ints, sum.data(), 2);
  EXPECT_EQ(sum[0], std::numeric_limits<int32_t>::min());
  EXPECT_EQ(sum[1], -2);
}

TEST(RankOrderReductionTest, OutputMayAliasTheFirstContribution) {
  std::vector<double> a = {1.5, 2.5}, b = {10.0, 20.0};
  const void* contributions[] = {a.data(), b.data()};
  ReduceInRankOrder(ReduceOp::kSum, DType::kF64, contributions, a.data(), 2);
  EXPECT_EQ(a[0], 11.5);
  EXPECT_EQ(a[1], 22.5);
}

TEST(SingleProcessCommunicatorTest, CollectivesOfAGroupOfOne) {
  SingleProcessCommunicator world;
  EXPECT_EQ(world.size(), 1);
  EXPECT_EQ(world.rank(), 0);
  EXPECT_EQ(world.name(), "world");
  std::vector<float> values = {1, 2, 3, 4};
  Tensor t = Tensor::Wrap(values.data(), {2, 2}, DType::kF32);
  world.AllReduce(t, ReduceOp::kSum);
  EXPECT_EQ(values, (std::vector<float>{1, 2, 3, 4}));
  Tensor gathered = Tensor::Zeros({2, 2}, DType::kF32);
  world.AllGather(t, gathered);
  EXPECT_EQ(gathered.data<float>()[3], 4.0f);
  const std::vector<int64_t> rows = {2};
  Tensor moved = world.AllToAllV(t, rows, rows);
  EXPECT_EQ(moved.shape(), (Shape{2, 2}));
  EXPECT_EQ(moved.data<float>()[2], 3.0f);
  const std::vector<int64_t> counts = {7};
  EXPECT_EQ(world.ExchangeCounts(counts), counts);
  std::unique_ptr<Communicator> sub = world.Split(0, 0, "tp");
  EXPECT_EQ(sub->name(), "tp");
  EXPECT_EQ(sub->size(), 1);
}

}  // namespace
}  // namespace aoetron::parallel
