// ActivationArena: alignment, no overlap, Mark/Rewind, and the single-block steady state.
#include "core/arena.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

namespace aoetron {
namespace {

uintptr_t Address(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data<float>()); }

// Live tensors never share a byte and every tensor is 64-byte aligned.
void ExpectDisjointAndAligned(const std::vector<Tensor>& live) {
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
  for (const Tensor& t : live) {
    EXPECT_EQ(Address(t) % 64, 0u);
    ranges.push_back({Address(t), Address(t) + t.numel() * sizeof(float)});
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    EXPECT_LE(ranges[i - 1].second, ranges[i].first) << "tensors " << i - 1 << " and " << i;
  }
}

TEST(ActivationArenaTest, AllocationsAreAlignedAndDisjointAcrossBlocks) {
  ActivationArena arena;
  std::mt19937 rng(3);
  std::uniform_int_distribution<int64_t> size(1, 200000);
  std::vector<Tensor> live;
  for (int i = 0; i < 60; ++i) live.push_back(arena.Allocate({size(rng)}));
  ExpectDisjointAndAligned(live);
  // Writing every tensor with its own pattern and reading it back catches overlap too.
  for (size_t i = 0; i < live.size(); ++i) {
    std::fill_n(live[i].data<float>(), live[i].numel(), static_cast<float>(i));
  }
  for (size_t i = 0; i < live.size(); ++i) {
    const float* p = live[i].data<float>();
    for (int64_t j = 0; j < live[i].numel(); ++j) ASSERT_EQ(p[j], static_cast<float>(i));
  }
}

TEST(ActivationArenaTest, ResetConsolidatesToOneBlockOfThePeak) {
  ActivationArena arena;
  for (int i = 0; i < 40; ++i) arena.Allocate({100000});
  const size_t peak = arena.peak_bytes();
  EXPECT_GE(peak, 40u * 100000 * sizeof(float));
  arena.Reset();
  EXPECT_EQ(arena.bytes_in_use(), 0u);
  const size_t capacity = arena.capacity_bytes();
  EXPECT_GE(capacity, peak);
  // The same step again fits without growing: the steady state allocates nothing.
  const uintptr_t first = Address(arena.Allocate({100000}));
  for (int i = 1; i < 40; ++i) arena.Allocate({100000});
  EXPECT_EQ(arena.capacity_bytes(), capacity);
  arena.Reset();
  EXPECT_EQ(Address(arena.Allocate({100000})), first);
}

// A step that needs a few percent more than the last peak (expert parallelism: the pairs a rank
// receives vary with the routing) still fits in the consolidated block: no new block, no fresh
// pages to fault in while the other ranks wait.
TEST(ActivationArenaTest, ConsolidatedBlockHasHeadroomForSmallGrowth) {
  ActivationArena arena;
  for (int i = 0; i < 40; ++i) arena.Allocate({100000});
  arena.Reset();
  const size_t capacity = arena.capacity_bytes();
  // 10% more than the peak: 44 allocations of the same size.
  const uintptr_t first = Address(arena.Allocate({100000}));
  for (int i = 1; i < 44; ++i) arena.Allocate({100000});
  EXPECT_EQ(arena.capacity_bytes(), capacity);
  arena.Reset();
  EXPECT_EQ(Address(arena.Allocate({100000})), first);
  // Growth past the headroom adds a block, and the next Reset() folds it in again.
  for (int i = 1; i < 60; ++i) arena.Allocate({100000});
  EXPECT_GT(arena.capacity_bytes(), capacity);
  arena.Reset();
  EXPECT_GE(arena.capacity_bytes(), 60u * 100000 * sizeof(float));
}

TEST(ActivationArenaTest, RewindReleasesOnlyWhatCameAfterTheMark) {
  ActivationArena arena;
  Tensor kept = arena.Allocate({1000});
  std::fill_n(kept.data<float>(), 1000, 7.0f);
  const size_t in_use = arena.bytes_in_use();
  const ActivationArena::Position mark = arena.Mark();
  Tensor scratch = arena.Allocate({5000});
  // Force a second block so the rewind crosses a block boundary.
  Tensor big = arena.Allocate({arena.capacity_bytes() / sizeof(float) + 1});
  std::fill_n(big.data<float>(), big.numel(), -1.0f);
  arena.Rewind(mark);
  EXPECT_EQ(arena.bytes_in_use(), in_use);
  // The memory after the mark is handed out again; what came before is untouched.
  Tensor again = arena.Allocate({5000});
  EXPECT_EQ(Address(again), Address(scratch));
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(kept.data<float>()[i], 7.0f);
}

TEST(ActivationArenaTest, DTypesAndShapesAreKept) {
  ActivationArena arena;
  Tensor a = arena.Allocate({3, 5}, DType::kF64);
  Tensor b = arena.Allocate({7}, DType::kI32);
  EXPECT_EQ(a.shape(), (Shape{3, 5}));
  EXPECT_EQ(a.dtype(), DType::kF64);
  EXPECT_EQ(b.dtype(), DType::kI32);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.raw_data()) % 64, 0u);
}

}  // namespace
}  // namespace aoetron
