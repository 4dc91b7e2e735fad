// Where a job's ranks run: which node (host name) holds each rank, and whether each kind of
// process group (tp, ep, dp, edp) stays inside one node. aoetron-train prints it at start-up on
// jobs of more than one node, and warns when tensor-parallel groups cross nodes
// (docs/multinode.md, "Rank mapping").
#pragma once

#include <string>
#include <vector>

#include "parallel/communicator.h"
#include "parallel/process_grid.h"

namespace aoetron {

struct NodePlacement {
  std::vector<std::string> nodes;  // host names, in the order of each node's first rank
  std::vector<int> node_of_rank;   // world rank → index into `nodes`
};

// Collective over `world`: every rank's host name, all-gathered.
NodePlacement GatherNodePlacement(parallel::Communicator& world, const std::string& hostname);

// The placement of `hostnames` (one per world rank, in rank order).
NodePlacement PlacementFromHostnames(const std::vector<std::string>& hostnames);

// Whether every group of `kind` in a job of `grid`'s shape has all its ranks on one node.
bool GroupsInsideNodes(const NodePlacement& placement, const parallel::ProcessGrid& grid,
                       parallel::GroupKind kind);

// "4 ranks on 2 nodes (node0: ranks 0-1; node1: ranks 2-3); inside a node: tp; across nodes:
// ep, dp, edp" — groups of size 1 are left out.
std::string DescribePlacement(const NodePlacement& placement, const parallel::ProcessGrid& grid);

}  // namespace aoetron
