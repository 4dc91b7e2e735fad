// Node placement (launcher/node_placement.h): which process groups stay inside a node, for the
// worked example of parallel/process_grid.h and for a placement that splits tp groups.
#include "launcher/node_placement.h"

#include <gtest/gtest.h>

namespace aoetron {
namespace {

parallel::ProcessGrid Grid(int world, int tp, int ep) {
  absl::StatusOr<parallel::ProcessGrid> grid = parallel::ProcessGrid::Create(world, 0, tp, ep);
  EXPECT_TRUE(grid.ok()) << grid.status();
  return *grid;
}

TEST(NodePlacementTest, BlockPlacementKeepsTpAndEpInsideNodes) {
  // 2 nodes × 4 ranks, tp 2, ep 2: tp {0,1} {2,3} ..., ep {0,2} {1,3} {4,6} {5,7} inside the
  // nodes; dp {0,2,4,6} and edp {0,4} across them.
  const NodePlacement placement = PlacementFromHostnames({"a", "a", "a", "a", "b", "b", "b", "b"});
  ASSERT_EQ(placement.nodes, (std::vector<std::string>{"a", "b"}));
  const parallel::ProcessGrid grid = Grid(8, 2, 2);
  EXPECT_TRUE(GroupsInsideNodes(placement, grid, parallel::GroupKind::kTensorParallel));
  EXPECT_TRUE(GroupsInsideNodes(placement, grid, parallel::GroupKind::kExpertParallel));
  EXPECT_FALSE(GroupsInsideNodes(placement, grid, parallel::GroupKind::kDataParallel));
  EXPECT_FALSE(GroupsInsideNodes(placement, grid, parallel::GroupKind::kExpertDataParallel));
  EXPECT_EQ(DescribePlacement(placement, grid),
            "8 ranks on 2 nodes (a: ranks 0-3; b: ranks 4-7); inside a node: tp, ep; across "
            "nodes: dp, edp");
}

TEST(NodePlacementTest, RoundRobinPlacementSplitsTp) {
  // Ranks dealt to nodes in turn (mpirun --map-by node): every tp pair spans both nodes.
  const NodePlacement placement = PlacementFromHostnames({"a", "b", "a", "b"});
  const parallel::ProcessGrid grid = Grid(4, 2, 1);
  EXPECT_FALSE(GroupsInsideNodes(placement, grid, parallel::GroupKind::kTensorParallel));
  EXPECT_TRUE(GroupsInsideNodes(placement, grid, parallel::GroupKind::kDataParallel));
  // ep has size 1 here: left out; edp is dp (ep 1).
  EXPECT_EQ(DescribePlacement(placement, grid),
            "4 ranks on 2 nodes (a: ranks 0,2; b: ranks 1,3); inside a node: dp, edp; across "
            "nodes: tp");
}

TEST(NodePlacementTest, OneNode) {
  const NodePlacement placement = PlacementFromHostnames({"x", "x"});
  EXPECT_EQ(DescribePlacement(placement, Grid(2, 1, 1)),
            "2 ranks on 1 node (x: ranks 0-1); inside a node: dp, edp");
}

}  // namespace
}  // namespace aoetron
