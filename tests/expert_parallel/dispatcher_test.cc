// Single-process tests of the dispatch layout and of ExpertDispatcher: hand-built layouts with
// their expected numbers, the capacity rule, and the all-to-all path (forced on a group of one)
// against the local path and the closed form of tests/expert_parallel/toy_experts.h.
#include <gtest/gtest.h>

#include <random>

#include "parallel/all_to_all_dispatcher.h"
#include "parallel/dispatch_layout.h"
#include "parallel/expert_dispatcher.h"
#include "parallel/local_expert_dispatcher.h"
#include "parallel/single_process_communicator.h"
#include "tests/expert_parallel/toy_experts.h"

namespace aoetron::expert_parallel_test {
namespace {

using parallel::BuildDispatchLayout;
using parallel::DispatchLayout;
using parallel::ExpertDispatcher;

Tensor Index(std::vector<int32_t>& values, int64_t k) {
  return Tensor::Wrap(values.data(), {static_cast<int64_t>(values.size()) / k, k}, DType::kI32);
}

std::vector<int32_t> AsVector(const Tensor& t) {
  return std::vector<int32_t>(t.data<int32_t>(), t.data<int32_t>() + t.numel());
}

// 4 experts over 2 ranks (rank 0: experts 0, 1; rank 1: experts 2, 3), K = 2.
TEST(DispatchLayoutTest, TokenWithTwoExpertsOnOneRankIsSentOnce) {
  std::vector<int32_t> index = {2, 3,   // token 0: both experts on rank 1 → one x row to rank 1
                                0, 3,   // token 1: one pair to each rank
                                1, 0};  // token 2: both on rank 0
  DispatchLayout layout;
  BuildDispatchLayout(Index(index, 2), 4, 2, {}, layout);
  EXPECT_EQ(layout.send_tokens, (std::vector<int64_t>{2, 2}));  // rank 0: t1, t2; rank 1: t0, t1
  EXPECT_EQ(layout.send_pairs, (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(layout.sent_token, (std::vector<int32_t>{1, 2, 0, 1}));
  // Slots: rank 0 gets (t1,e0) (t2,e1) (t2,e0); rank 1 gets (t0,e2) (t0,e3) (t1,e3).
  EXPECT_EQ(AsVector(layout.pair_slot), (std::vector<int32_t>{3, 4, 0, 5, 1, 2}));
  // Metadata: (local expert, token row among the tokens sent to that rank).
  EXPECT_EQ(layout.slot_metadata, (std::vector<int32_t>{0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1}));
  EXPECT_EQ(layout.token_row, (std::vector<int32_t>{-1, 0, 0, 1, 1, -1}));
  EXPECT_EQ(layout.dropped_pairs(), 0);
}

TEST(DispatchLayoutTest, NoTokensForOneRank) {
  std::vector<int32_t> index = {0, 1, 1, 0, 0, 1};  // everything on rank 0
  DispatchLayout layout;
  BuildDispatchLayout(Index(index, 2), 4, 2, {}, layout);
  EXPECT_EQ(layout.send_tokens, (std::vector<int64_t>{3, 0}));
  EXPECT_EQ(layout.send_pairs, (std::vector<int64_t>{6, 0}));
  EXPECT_EQ(AsVector(layout.pair_slot), (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
}

TEST(DispatchLayoutTest, CapacityKeepsTheFirstPairsInTokenOrder) {
  std::vector<int32_t> index = {3, 0, 3, 1, 3, 0, 2, 3};  // expert 3 chosen by all four tokens
  const std::vector<int64_t> keep = {5, 5, 5, 2};         // expert 3 keeps two pairs
  DispatchLayout layout;
  BuildDispatchLayout(Index(index, 2), 4, 2, keep, layout);
  EXPECT_EQ(layout.dropped_pairs(), 2);
  EXPECT_EQ(layout.send_pairs, (std::vector<int64_t>{3, 3}));   // e0, e1, e0 | e3, e3, e2
  EXPECT_EQ(layout.send_tokens, (std::vector<int64_t>{3, 3}));  // t0 t1 t2 | t0 t1 t3
  // (t2, e3) and (t3, e3) are dropped: slots 6 and 7, after every kept pair, in (t, j) order.
  EXPECT_EQ(AsVector(layout.pair_slot), (std::vector<int32_t>{3, 0, 4, 1, 6, 2, 5, 7}));
}

TEST(DispatchLayoutTest, LocalLayoutPutsDroppedPairsAfterEveryBlock) {
  std::vector<int32_t> index = {1, 0, 1, 0, 1, 0};
  const std::vector<int64_t> keep = {3, 1};
  const ops::ExpertLayout layout = ops::BuildExpertLayout(Index(index, 2), 2, keep);
  EXPECT_EQ(layout.counts, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(layout.offsets, (std::vector<int64_t>{0, 3, 4}));
  EXPECT_EQ(AsVector(layout.position), (std::vector<int32_t>{3, 0, 4, 1, 5, 2}));
  // Without limits it is exactly ops::BuildExpertLayout.
  const ops::ExpertLayout dropless = ops::BuildExpertLayout(Index(index, 2), 2, {});
  EXPECT_EQ(dropless.offsets, (std::vector<int64_t>{0, 3, 6}));
}

TEST(DispatchLayoutTest, CapacityAndKeepLimits) {
  EXPECT_EQ(parallel::ExpertCapacity(0.0, 100, 2, 8), 0);
  EXPECT_EQ(parallel::ExpertCapacity(1.0, 100, 2, 8), 25);
  EXPECT_EQ(parallel::ExpertCapacity(1.1, 100, 2, 8), 28);  // ceil(27.5)
  // Three data-parallel ranks, two experts, capacity 5: expert 0 counts 3, 4, 2.
  const std::vector<int64_t> counts = {3, 1, 4, 1, 2, 9};
  EXPECT_EQ(parallel::KeepLimits(counts, 2, 0, 5), (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(parallel::KeepLimits(counts, 2, 1, 5), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(parallel::KeepLimits(counts, 2, 2, 5), (std::vector<int64_t>{0, 3}));
}

// Both dispatchers on one process, MoE (g = 0) and AoE (g = 3), with and without capacity: the
// all-to-all dispatcher (on a group of one) and the local one both give the closed form.
TEST(ExpertDispatcherTest, AllToAllPathOnOneRankMatchesLocalPathAndClosedForm) {
  std::mt19937_64 rng(7);
  parallel::SingleProcessCommunicator ep("ep");
  for (int64_t g : {0, 3}) {
    for (bool capacity : {false, true}) {
      SCOPED_TRACE(testing::Message() << "gate width " << g << ", capacity " << capacity);
      ToyRouting r = RandomRouting(rng, 13, 2, 6, 4, g);
      if (capacity) r.keep_limit = {2, 7, 0, 5};
      const ToyExpected want = r.Expected();
      parallel::LocalExpertDispatcher local(4, 6, g);
      parallel::AllToAllExpertDispatcher all_to_all(ep, ep, 4, 6, g);
      for (ExpertDispatcher* dispatcher :
           {static_cast<ExpertDispatcher*>(&local), static_cast<ExpertDispatcher*>(&all_to_all)}) {
        ActivationArena arena;
        for (int repeat = 0; repeat < 2; ++repeat) {  // state is rebuilt each step
          const ToyExpected got = RunToyRoundTrip(*dispatcher, r, arena);
          ExpectNear(got.y, want.y, "y");
          ExpectNear(got.dw, want.dw, "dw");
          ExpectNear(got.dx, want.dx, "dx");
          ExpectNear(got.dcache, want.dcache, "dC");
        }
        const int64_t kept = capacity ? 2 + 7 + 0 + 5 : 26;
        EXPECT_LE(dispatcher->stats().kept_pairs, kept);
        EXPECT_EQ(dispatcher->stats().kept_pairs + dispatcher->stats().dropped_pairs, 26);
        EXPECT_EQ(dispatcher->stats().received_pairs, dispatcher->stats().kept_pairs);
        EXPECT_EQ(dispatcher->stats().total_bytes(), 0);  // nothing leaves a group of one
      }
    }
  }
}

}  // namespace
}  // namespace aoetron::expert_parallel_test
