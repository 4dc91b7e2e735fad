// ExpertDispatcher across ranks (ep = the world): hand-built layouts with known traffic, and
// random routings, each checked row by row against the closed form of toy_experts.h on the
// source rank, with the bytes sent equal to the analytic minimum counted here independently.
#include <gtest/gtest.h>

#include <random>

#include "parallel/all_to_all_dispatcher.h"
#include "parallel/expert_dispatcher.h"
#include "parallel/local_expert_dispatcher.h"
#include "tests/expert_parallel/toy_experts.h"
#include "tests/parallel/mpi_test_environment.h"

namespace aoetron::expert_parallel_test {
namespace {

using parallel::AllToAllExpertDispatcher;
using parallel::ExpertBatch;

parallel::Communicator& World() { return parallel::mpi_test::Context().world(); }

// Same values on every rank for a given (test, rank).
std::mt19937_64 RankRng(int salt) {
  return std::mt19937_64(parallel::mpi_test::TestSeed() * 1000003 + World().rank() * 101 + salt);
}

// x[t, 0] encodes the global token order (source rank, then token) so the expert side can check
// that its blocks are in global token order.
void MarkGlobalOrder(ToyRouting& r) {
  for (int64_t t = 0; t < r.tokens; ++t) r.x[t * r.d] = World().rank() * 10000.0 + t;
}

// Runs the round trip and checks everything the source and the expert rank can check.
void CheckRoundTrip(ToyRouting& r, const std::function<void(const ExpertBatch&)>& inspect) {
  const int ep = World().size(), self = World().rank();
  AllToAllExpertDispatcher dispatcher(World(), World(), r.n_experts, r.d, r.g);
  ActivationArena arena;
  MarkGlobalOrder(r);
  const ToyExpected want = r.Expected();
  const ToyExpected got = RunToyRoundTrip(dispatcher, r, arena, [&](const ExpertBatch& batch) {
    // Every expert block is in global token order (strictly increasing mark).
    const double* x = batch.x.data<double>();
    for (size_t e = 0; e + 1 < batch.offsets.size(); ++e) {
      for (int64_t row = batch.offsets[e] + 1; row < batch.offsets[e + 1]; ++row) {
        EXPECT_LT(x[(row - 1) * r.d], x[row * r.d]) << "local expert " << e << " row " << row;
      }
    }
    if (inspect) inspect(batch);
  });
  ExpectNear(got.y, want.y, "y");
  ExpectNear(got.dw, want.dw, "dw");
  ExpectNear(got.dx, want.dx, "dx");
  ExpectNear(got.dcache, want.dcache, "dC");
  const parallel::DispatchStats& stats = dispatcher.stats();
  EXPECT_EQ(stats.forward_payload_bytes, r.MinimumPayloadBytes(ep, self));
  EXPECT_EQ(stats.minimum_payload_bytes, r.MinimumPayloadBytes(ep, self));
  // Every rank's received pairs are some rank's kept pairs: the totals agree.
  int64_t totals[2] = {stats.kept_pairs, stats.received_pairs};
  World().AllReduce(Tensor::Wrap(totals, {2}, DType::kI64), parallel::ReduceOp::kSum);
  EXPECT_EQ(totals[0], totals[1]);
}

class DispatcherMpiTest : public testing::TestWithParam<int64_t> {  // gate width g
 protected:
  int64_t g() const { return GetParam(); }
  int ep() const { return World().size(); }
  int self() const { return World().rank(); }
};

// Each rank r, with p = (r + 1) mod ep:
//   token 0 → experts 2p, 2p+1 (both on rank p: its x goes to p ONCE, with two gate rows)
//   token 1 → experts 2r, 2p   (one local pair, one for p)
//   token 2 → experts 2r+1, 2r (both local: nothing leaves the rank)
TEST_P(DispatcherMpiTest, TokenWithTwoExpertsOnOneRankSendsXOnce) {
  std::mt19937_64 rng = RankRng(1);
  ToyRouting r = RandomRouting(rng, 3, 2, 5, 2 * ep(), g());
  const int p = (self() + 1) % ep(), me = self();
  r.index = {2 * p, 2 * p + 1, 2 * me, 2 * p, 2 * me + 1, 2 * me};
  CheckRoundTrip(r, [&](const ExpertBatch& batch) {
    // Received: 2 + 1 pairs from the rank before, 1 + 2 of our own.
    EXPECT_EQ(batch.x.dim(0), 6);
  });
  AllToAllExpertDispatcher probe(World(), World(), r.n_experts, r.d, g());
  ActivationArena arena;
  RunToyRoundTrip(probe, r, arena);
  // Two x rows (tokens 0 and 1) and three gate rows (0, 0, 1) leave this rank, to p.
  const int64_t bytes = (2 * r.d + 3 * g()) * 8;
  EXPECT_EQ(probe.stats().forward_payload_bytes, bytes);
  EXPECT_EQ(probe.stats().peer_token_rows, 2);
  EXPECT_EQ(probe.stats().peer_pairs, 3);
  EXPECT_EQ(probe.layout().send_tokens[p], 2);
  EXPECT_EQ(probe.layout().send_pairs[p], 3);
  EXPECT_EQ(probe.stats().forward_return_bytes, 3 * r.d * 8);
  EXPECT_EQ(probe.stats().backward_bytes, 3 * r.d * 8 + bytes);
}

// Every token of every rank picks experts 0 and 1, both on rank 0: the other ranks receive
// nothing (their expert blocks are empty) and rank 0 receives every pair.
TEST_P(DispatcherMpiTest, NoTokensForSomeRanks) {
  std::mt19937_64 rng = RankRng(2);
  ToyRouting r = RandomRouting(rng, 4, 2, 5, 2 * ep(), g());
  for (int64_t t = 0; t < r.tokens; ++t) {
    r.index[2 * t] = static_cast<int32_t>(t % 2);
    r.index[2 * t + 1] = static_cast<int32_t>(1 - t % 2);
  }
  CheckRoundTrip(r, [&](const ExpertBatch& batch) {
    EXPECT_EQ(batch.x.dim(0), self() == 0 ? 2 * r.tokens * ep() : 0);
    if (self() != 0) {
      EXPECT_EQ(batch.offsets, std::vector<int64_t>(3, 0));
    }
  });
}

// K = 1 and every token picks the last expert.
TEST_P(DispatcherMpiTest, AllTokensToOneExpert) {
  std::mt19937_64 rng = RankRng(3);
  ToyRouting r = RandomRouting(rng, 5, 1, 4, 2 * ep(), g());
  std::fill(r.index.begin(), r.index.end(), static_cast<int32_t>(r.n_experts - 1));
  CheckRoundTrip(r, [&](const ExpertBatch& batch) {
    const int64_t all = r.tokens * ep();
    const std::vector<int64_t> want =
        self() == ep() - 1 ? std::vector<int64_t>{0, 0, all} : std::vector<int64_t>{0, 0, 0};
    EXPECT_EQ(batch.offsets, want);
  });
}

// Random routings, uneven token counts (rank 1 has none), top-3 of 3 experts per rank.
TEST_P(DispatcherMpiTest, RandomRoutingUnevenRanks) {
  std::mt19937_64 rng = RankRng(4);
  const int64_t tokens = self() == 1 ? 0 : 7 + 3 * self();
  ToyRouting r = RandomRouting(rng, tokens, 3, 6, 3 * ep(), g());
  CheckRoundTrip(r, nullptr);
}

// Capacity: random keep limits (the dispatcher keeps the first pairs of each expert).
TEST_P(DispatcherMpiTest, RandomRoutingWithKeepLimits) {
  std::mt19937_64 rng = RankRng(5);
  ToyRouting r = RandomRouting(rng, 11, 2, 4, 2 * ep(), g());
  std::uniform_int_distribution<int64_t> limit(0, 4);
  r.keep_limit.resize(r.n_experts);
  for (int64_t& l : r.keep_limit) l = limit(rng);
  CheckRoundTrip(r, nullptr);
}

INSTANTIATE_TEST_SUITE_P(MoeAndAoe, DispatcherMpiTest, testing::Values(0, 3),
                         [](const testing::TestParamInfo<int64_t>& info) {
                           return info.param == 0 ? std::string("Router") : std::string("Aoe");
                         });

}  // namespace
}  // namespace aoetron::expert_parallel_test
