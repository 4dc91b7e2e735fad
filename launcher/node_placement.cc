#include "launcher/node_placement.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "parallel/string_collectives.h"

namespace aoetron {

NodePlacement GatherNodePlacement(parallel::Communicator& world, const std::string& hostname) {
  return PlacementFromHostnames(parallel::AllGatherStrings(world, hostname));
}

NodePlacement PlacementFromHostnames(const std::vector<std::string>& hostnames) {
  NodePlacement placement;
  std::map<std::string, int> index;
  for (const std::string& name : hostnames) {
    auto [it, added] = index.emplace(name, static_cast<int>(placement.nodes.size()));
    if (added) placement.nodes.push_back(name);
    placement.node_of_rank.push_back(it->second);
  }
  return placement;
}

bool GroupsInsideNodes(const NodePlacement& placement, const parallel::ProcessGrid& grid,
                       parallel::GroupKind kind) {
  for (int rank = 0; rank < grid.world_size(); ++rank) {
    absl::StatusOr<parallel::ProcessGrid> at =
        parallel::ProcessGrid::Create(grid.world_size(), rank, grid.tp_size(), grid.ep_size());
    if (!at.ok()) return false;
    for (int member : at->Group(kind).members) {
      if (placement.node_of_rank[member] != placement.node_of_rank[rank]) return false;
    }
  }
  return true;
}

namespace {

// "0-3", "0,2,4" or "0-1,4-5": ascending ranks as ranges.
std::string RankRanges(const std::vector<int>& ranks) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    parts.push_back(j == i ? absl::StrCat(ranks[i]) : absl::StrCat(ranks[i], "-", ranks[j]));
    i = j + 1;
  }
  return absl::StrJoin(parts, ",");
}

}  // namespace

std::string DescribePlacement(const NodePlacement& placement, const parallel::ProcessGrid& grid) {
  std::vector<std::vector<int>> ranks_of_node(placement.nodes.size());
  for (int rank = 0; rank < static_cast<int>(placement.node_of_rank.size()); ++rank) {
    ranks_of_node[placement.node_of_rank[rank]].push_back(rank);
  }
  std::vector<std::string> nodes;
  for (size_t n = 0; n < placement.nodes.size(); ++n) {
    nodes.push_back(absl::StrCat(placement.nodes[n], ": ranks ", RankRanges(ranks_of_node[n])));
  }
  std::vector<std::string> inside, across;
  for (parallel::GroupKind kind : parallel::kAllGroupKinds) {
    if (grid.GroupSize(kind) == 1) continue;
    (GroupsInsideNodes(placement, grid, kind) ? inside : across)
        .push_back(parallel::GroupKindName(kind));
  }
  std::string text =
      absl::StrFormat("%d ranks on %d node%s (%s)", grid.world_size(), placement.nodes.size(),
                      placement.nodes.size() == 1 ? "" : "s", absl::StrJoin(nodes, "; "));
  if (!inside.empty()) absl::StrAppend(&text, "; inside a node: ", absl::StrJoin(inside, ", "));
  if (!across.empty()) absl::StrAppend(&text, "; across nodes: ", absl::StrJoin(across, ", "));
  return text;
}

}  // namespace aoetron
