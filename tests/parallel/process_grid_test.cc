// ProcessGrid without MPI: every layout in {tp 1,2} × {ep 1,2,4} × world {1,2,4,8} is either
// valid, with groups that partition the world exactly as docs/parallel.md says, or rejected with
// a message naming the fields.
#include "parallel/process_grid.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <vector>

namespace aoetron::parallel {
namespace {

struct Layout {
  int world;
  int tp;
  int ep;
};

std::vector<Layout> AllLayouts() {
  std::vector<Layout> layouts;
  for (int world : {1, 2, 4, 8}) {
    for (int tp : {1, 2}) {
      for (int ep : {1, 2, 4}) layouts.push_back({world, tp, ep});
    }
  }
  return layouts;
}

bool IsValid(const Layout& l) { return l.world % l.tp == 0 && (l.world / l.tp) % l.ep == 0; }

std::string Name(const Layout& l) {
  return "world " + std::to_string(l.world) + " tp " + std::to_string(l.tp) + " ep " +
         std::to_string(l.ep);
}

TEST(ProcessGridTest, EveryValidLayoutPartitionsTheWorldIntoEachKindOfGroup) {
  int valid_layouts = 0;
  for (const Layout& l : AllLayouts()) {
    if (!IsValid(l)) continue;
    ++valid_layouts;
    SCOPED_TRACE(Name(l));
    std::vector<ProcessGrid> grids;
    for (int rank = 0; rank < l.world; ++rank) {
      absl::StatusOr<ProcessGrid> grid = ProcessGrid::Create(l.world, rank, l.tp, l.ep);
      ASSERT_TRUE(grid.ok()) << grid.status();
      grids.push_back(*grid);
    }
    const int dp = l.world / l.tp;
    for (GroupKind kind : kAllGroupKinds) {
      SCOPED_TRACE(GroupKindName(kind));
      const int expected_size = kind == GroupKind::kTensorParallel   ? l.tp
                                : kind == GroupKind::kDataParallel   ? dp
                                : kind == GroupKind::kExpertParallel ? l.ep
                                                                     : dp / l.ep;
      std::map<int, std::vector<int>> groups_by_index;
      std::map<int, int> times_seen;  // world rank -> number of groups of this kind holding it
      for (const ProcessGrid& grid : grids) {
        const GroupMembership g = grid.Group(kind);
        ASSERT_EQ(static_cast<int>(g.members.size()), expected_size);
        ASSERT_EQ(grid.GroupSize(kind), expected_size);
        ASSERT_EQ(g.members[g.rank_in_group], grid.rank()) << "rank_in_group points elsewhere";
        ASSERT_TRUE(std::is_sorted(g.members.begin(), g.members.end()));
        ASSERT_GE(g.index, 0);
        ASSERT_LT(g.index, grid.NumGroups(kind));
        // Every member of a group computes the same group under the same index.
        auto [it, inserted] = groups_by_index.emplace(g.index, g.members);
        if (!inserted) {
          ASSERT_EQ(it->second, g.members) << "group index " << g.index;
        }
      }
      ASSERT_EQ(static_cast<int>(groups_by_index.size()), l.world / expected_size);
      for (const auto& [index, members] : groups_by_index) {
        for (int member : members) ++times_seen[member];
      }
      for (int rank = 0; rank < l.world; ++rank) {
        EXPECT_EQ(times_seen[rank], 1) << "rank " << rank << " must be in exactly one group";
      }
    }
  }
  EXPECT_EQ(valid_layouts, 15);
}

// The defining property of each group, checked member by member from the coordinates.
TEST(ProcessGridTest, GroupsHoldTheRanksTheirDefinitionsSay) {
  for (const Layout& l : AllLayouts()) {
    if (!IsValid(l)) continue;
    SCOPED_TRACE(Name(l));
    for (int rank = 0; rank < l.world; ++rank) {
      const ProcessGrid me = *ProcessGrid::Create(l.world, rank, l.tp, l.ep);
      // tp fastest, then ep, then the expert-dp replica.
      EXPECT_EQ(rank, me.tp_rank() + l.tp * (me.ep_rank() + l.ep * me.expert_dp_rank()));
      EXPECT_EQ(me.dp_rank(), me.ep_rank() + l.ep * me.expert_dp_rank());
      EXPECT_EQ(me.WorldRank(me.tp_rank(), me.ep_rank(), me.expert_dp_rank()), rank);
      auto other = [&](int r) { return *ProcessGrid::Create(l.world, r, l.tp, l.ep); };
      for (int r : me.Group(GroupKind::kTensorParallel).members) {
        EXPECT_EQ(other(r).dp_rank(), me.dp_rank());
      }
      const std::vector<int> tp_members = me.Group(GroupKind::kTensorParallel).members;
      EXPECT_EQ(tp_members.back() - tp_members.front(), l.tp - 1) << "tp ranks are consecutive";
      for (int r : me.Group(GroupKind::kDataParallel).members) {
        EXPECT_EQ(other(r).tp_rank(), me.tp_rank());
      }
      for (int r : me.Group(GroupKind::kExpertParallel).members) {
        EXPECT_EQ(other(r).tp_rank(), me.tp_rank());
        EXPECT_EQ(other(r).expert_dp_rank(), me.expert_dp_rank());
      }
      const std::vector<int> ep_members = me.Group(GroupKind::kExpertParallel).members;
      for (size_t i = 1; i < ep_members.size(); ++i) {
        EXPECT_EQ(other(ep_members[i]).dp_rank(), other(ep_members[i - 1]).dp_rank() + 1)
            << "ep groups are consecutive dp ranks";
      }
      for (int r : me.Group(GroupKind::kExpertDataParallel).members) {
        EXPECT_EQ(other(r).tp_rank(), me.tp_rank());
        EXPECT_EQ(other(r).ep_rank(), me.ep_rank());
      }
    }
  }
}

TEST(ProcessGridTest, WorkedExampleOfTheDocs) {
  // world 8, tp 2, ep 2: the table in process_grid.h and docs/parallel.md.
  std::map<GroupKind, std::set<std::vector<int>>> expected = {
      {GroupKind::kTensorParallel, {{0, 1}, {2, 3}, {4, 5}, {6, 7}}},
      {GroupKind::kDataParallel, {{0, 2, 4, 6}, {1, 3, 5, 7}}},
      {GroupKind::kExpertParallel, {{0, 2}, {1, 3}, {4, 6}, {5, 7}}},
      {GroupKind::kExpertDataParallel, {{0, 4}, {1, 5}, {2, 6}, {3, 7}}},
  };
  const int ep_rank[8] = {0, 0, 1, 1, 0, 0, 1, 1};
  const int edp_rank[8] = {0, 0, 0, 0, 1, 1, 1, 1};
  for (int rank = 0; rank < 8; ++rank) {
    const ProcessGrid grid = *ProcessGrid::Create(8, rank, 2, 2);
    EXPECT_EQ(grid.tp_rank(), rank % 2);
    EXPECT_EQ(grid.dp_rank(), rank / 2);
    EXPECT_EQ(grid.ep_rank(), ep_rank[rank]);
    EXPECT_EQ(grid.expert_dp_rank(), edp_rank[rank]);
    for (GroupKind kind : kAllGroupKinds) {
      EXPECT_TRUE(expected[kind].count(grid.Group(kind).members))
          << GroupKindName(kind) << " group of rank " << rank;
    }
    const ExpertShard experts = *grid.LocalExperts(8);
    EXPECT_EQ(experts.first, ep_rank[rank] * 4);
    EXPECT_EQ(experts.count, 4);
  }
  EXPECT_EQ(ProcessGrid::Create(8, 5, 2, 2)->DebugString(),
            "rank 5 of 8: tp 1/2, dp 2/4, ep 0/2, edp 1/2");
}

TEST(ProcessGridTest, InvalidLayoutsAreErrorsNamingTheFields) {
  int invalid_layouts = 0;
  for (const Layout& l : AllLayouts()) {
    if (IsValid(l)) continue;
    ++invalid_layouts;
    SCOPED_TRACE(Name(l));
    const absl::Status status = ProcessGrid::Create(l.world, 0, l.tp, l.ep).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    if (l.world % l.tp != 0) {
      EXPECT_NE(status.message().find("parallel.tp=" + std::to_string(l.tp)), std::string::npos)
          << status;
    } else {
      EXPECT_NE(status.message().find("parallel.ep=" + std::to_string(l.ep)), std::string::npos)
          << status;
    }
  }
  EXPECT_EQ(invalid_layouts, 9);

  EXPECT_EQ(ProcessGrid::Create(8, 0, 2, 3).status().message(),
            "parallel.ep=3 must divide the data-parallel size 4 (world 8 / parallel.tp 2)");
  EXPECT_EQ(ProcessGrid::Create(6, 0, 4, 1).status().message(),
            "parallel.tp=4 must divide the world size 6");
  EXPECT_EQ(ProcessGrid::Create(8, 0, 0, 1).status().message(), "parallel.tp=0 must be at least 1");
  EXPECT_EQ(ProcessGrid::Create(8, 0, 1, -2).status().message(),
            "parallel.ep=-2 must be at least 1");
  EXPECT_EQ(ProcessGrid::Create(8, 8, 1, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ProcessGrid::Create(0, 0, 1, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ProcessGrid::Create(8, 0, 1, 2)->LocalExperts(3).status().message(),
            "the number of experts 3 must be a positive multiple of parallel.ep=2");
}

}  // namespace
}  // namespace aoetron::parallel
