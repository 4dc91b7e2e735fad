// CreateProcessGroups under mpirun: for every valid (tp, ep) at this world size, each group's
// communicator holds exactly the grid's members, in the grid's order.
#include <gtest/gtest.h>

#include <vector>

#include "parallel/process_groups.h"
#include "tests/parallel/mpi_test_environment.h"

namespace aoetron::parallel {
namespace {

TEST(ProcessGroupsTest, CommunicatorsMatchTheGridForEveryLayout) {
  DistributedContext& context = mpi_test::Context();
  const int world = context.world_size();
  int layouts = 0;
  for (int tp : {1, 2, 4}) {
    for (int ep : {1, 2, 4}) {
      absl::StatusOr<ProcessGrid> grid = ProcessGrid::Create(world, context.world_rank(), tp, ep);
      if (!grid.ok()) continue;
      ++layouts;
      SCOPED_TRACE(grid->DebugString());
      absl::StatusOr<ProcessGroups> groups = CreateProcessGroups(*grid, context.world());
      ASSERT_TRUE(groups.ok()) << groups.status();
      for (GroupKind kind : kAllGroupKinds) {
        SCOPED_TRACE(GroupKindName(kind));
        Communicator& comm = groups->Get(kind);
        const GroupMembership expected = grid->Group(kind);
        EXPECT_EQ(comm.name(), GroupKindName(kind));
        EXPECT_EQ(comm.size(), static_cast<int>(expected.members.size()));
        EXPECT_EQ(comm.rank(), expected.rank_in_group);
        // Gathering world ranks lists the members in group order.
        int64_t me = context.world_rank();
        std::vector<int64_t> members(comm.size());
        comm.AllGather(Tensor::Wrap(&me, {1}, DType::kI64),
                       Tensor::Wrap(members.data(), {comm.size()}, DType::kI64));
        EXPECT_EQ(members, std::vector<int64_t>(expected.members.begin(), expected.members.end()));
      }
      EXPECT_EQ(&groups->Get(GroupKind::kExpertParallel), &groups->expert_parallel());
    }
  }
  EXPECT_GE(layouts, 1);
}

TEST(ProcessGroupsTest, MismatchedWorldIsAnError) {
  DistributedContext& context = mpi_test::Context();
  const ProcessGrid grid = *ProcessGrid::Create(context.world_size() * 2, 0, 1, 1);
  EXPECT_EQ(CreateProcessGroups(grid, context.world()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace aoetron::parallel
