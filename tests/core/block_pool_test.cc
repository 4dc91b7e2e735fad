// BlockPool (core/block_pool.h): best fit, splitting, merging and segment release, on plain
// addresses (the CUDA allocator's large-block bookkeeping, tested without a GPU), and a random
// sequence of takes and gives against an independent model of which bytes are taken.
#include "core/block_pool.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <random>
#include <vector>

namespace aoetron {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

TEST(BlockPoolTest, SplitsTheBestFitAndMergesOnReturn) {
  BlockPool pool(/*min_split=*/2 * kMiB);
  pool.AddSegment(1000 * kMiB, 100 * kMiB);
  pool.AddSegment(2000 * kMiB, 30 * kMiB);
  // 20 MiB: the 30 MiB segment is the best fit; the rest (10 MiB) stays free.
  EXPECT_EQ(pool.Take(20 * kMiB), 2000 * kMiB);
  EXPECT_EQ(pool.free_bytes(), 110 * kMiB);
  // 10 MiB: exactly the rest of that segment.
  EXPECT_EQ(pool.Take(10 * kMiB), 2020 * kMiB);
  // Two 40 MiB blocks from the 100 MiB segment: what a segment-per-size-class cache could not do.
  EXPECT_EQ(pool.Take(40 * kMiB), 1000 * kMiB);
  EXPECT_EQ(pool.Take(40 * kMiB), 1040 * kMiB);
  EXPECT_EQ(pool.Take(40 * kMiB), std::nullopt);  // 20 MiB left
  EXPECT_EQ(pool.free_bytes(), 20 * kMiB);
  // Giving the first 40 back does not merge with the taken second; giving the second merges all.
  EXPECT_EQ(pool.Give(1000 * kMiB), 40 * kMiB);
  EXPECT_EQ(pool.Take(60 * kMiB), std::nullopt);
  EXPECT_EQ(pool.Give(1040 * kMiB), 40 * kMiB);
  EXPECT_EQ(pool.Take(100 * kMiB), 1000 * kMiB);  // one block again
  // A rest below min_split is not split off: the block is handed out whole.
  EXPECT_EQ(pool.Give(1000 * kMiB), 100 * kMiB);
  EXPECT_EQ(pool.Take(99 * kMiB), 1000 * kMiB);
  EXPECT_EQ(pool.Give(1000 * kMiB), 100 * kMiB);
  // Blocks of different segments never merge, even when their addresses touch.
  BlockPool touching(1);
  touching.AddSegment(0, 10);
  touching.AddSegment(10, 10);
  EXPECT_EQ(touching.Take(20), std::nullopt);
}

TEST(BlockPoolTest, RemovesOnlyEntirelyFreeSegments) {
  BlockPool pool(1);
  pool.AddSegment(100, 50);
  pool.AddSegment(200, 50);
  EXPECT_EQ(pool.Take(50), 100u);  // a whole segment: the lowest address on a tie
  const auto removed = pool.RemoveFreeSegments();
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0], std::make_pair(uintptr_t{200}, size_t{50}));
  EXPECT_EQ(pool.segments(), 1);
  EXPECT_TRUE(pool.IsTaken(100));
  pool.Give(100);
  EXPECT_EQ(pool.RemoveFreeSegments().size(), 1u);
  EXPECT_EQ(pool.segment_bytes(), 0u);
  EXPECT_EQ(pool.free_bytes(), 0u);
}

TEST(BlockPoolDeathTest, GivingWhatWasNotTakenFails) {
  BlockPool pool(1);
  pool.AddSegment(0, 16);
  EXPECT_DEATH(pool.Give(0), "not a taken block");
  EXPECT_DEATH(pool.Give(8), "not a taken block");
}

// Random takes and gives: taken blocks never overlap, lie inside a segment, and after everything
// is given back each segment is one free block again.
TEST(BlockPoolTest, RandomSequencesKeepBlocksDisjointAndMergeBack) {
  std::mt19937_64 rng(std::random_device{}());
  BlockPool pool(/*min_split=*/4);
  const std::vector<std::pair<uintptr_t, size_t>> segments = {{0, 256}, {1000, 512}, {5000, 64}};
  for (const auto& [base, bytes] : segments) pool.AddSegment(base, bytes);
  std::map<uintptr_t, size_t> taken;  // address → requested size
  std::uniform_int_distribution<size_t> size(1, 200);
  for (int i = 0; i < 5000; ++i) {
    if (!taken.empty() && (rng() % 2 == 0)) {
      auto it = taken.begin();
      std::advance(it, rng() % taken.size());
      EXPECT_GE(pool.Give(it->first), it->second);
      taken.erase(it);
      continue;
    }
    const size_t want = size(rng);
    const std::optional<uintptr_t> block = pool.Take(want);
    if (!block.has_value()) continue;  // nothing fits
    const uintptr_t address = *block;
    ASSERT_TRUE(pool.IsTaken(address));
    bool inside = false;
    for (const auto& [base, bytes] : segments) {
      inside = inside || (address >= base && address + want <= base + bytes);
    }
    ASSERT_TRUE(inside) << address << " + " << want;
    auto after = taken.lower_bound(address);
    if (after != taken.end()) ASSERT_LE(address + want, after->first);
    if (after != taken.begin()) {
      auto before = std::prev(after);
      ASSERT_LE(before->first + before->second, address);
    }
    taken[address] = want;
  }
  for (const auto& [address, bytes] : taken) pool.Give(address);
  EXPECT_EQ(pool.free_bytes(), 256u + 512u + 64u);
  EXPECT_EQ(pool.RemoveFreeSegments().size(), 3u);
}

}  // namespace
}  // namespace aoetron
