#include "parallel/process_groups.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "parallel/abort.h"
#include "parallel/single_process_communicator.h"

namespace aoetron::parallel {

Communicator& ProcessGroups::Get(GroupKind kind) {
  switch (kind) {
    case GroupKind::kTensorParallel:
      return *tp_;
    case GroupKind::kDataParallel:
      return *dp_;
    case GroupKind::kExpertParallel:
      return *ep_;
    case GroupKind::kExpertDataParallel:
      return *edp_;
  }
  return *tp_;
}

absl::StatusOr<ProcessGroups> CreateProcessGroups(const ProcessGrid& grid, Communicator& world) {
  if (grid.world_size() != world.size() || grid.rank() != world.rank()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the process grid (", grid.DebugString(), ") does not match the world communicator (rank ",
        world.rank(), " of ", world.size(), ")"));
  }
  ProcessGroups groups(grid);
  for (GroupKind kind : kAllGroupKinds) {
    const GroupMembership membership = grid.Group(kind);
    std::unique_ptr<Communicator> comm =
        world.Split(membership.index, membership.rank_in_group, GroupKindName(kind));
    // If the ranks disagree on the layout, the split groups come out with other sizes: a
    // programming error that must end every rank, not just this one.
    if (comm->size() != static_cast<int>(membership.members.size()) ||
        comm->rank() != membership.rank_in_group) {
      AbortAll(absl::StrCat("group ", GroupKindName(kind), " came out as rank ", comm->rank(),
                            " of ", comm->size(), " but the grid (", grid.DebugString(),
                            ") expects rank ", membership.rank_in_group, " of ",
                            membership.members.size(), ": do all ranks use the same tp and ep?"));
    }
    switch (kind) {
      case GroupKind::kTensorParallel:
        groups.tp_ = std::move(comm);
        break;
      case GroupKind::kDataParallel:
        groups.dp_ = std::move(comm);
        break;
      case GroupKind::kExpertParallel:
        groups.ep_ = std::move(comm);
        break;
      case GroupKind::kExpertDataParallel:
        groups.edp_ = std::move(comm);
        break;
    }
  }
  return groups;
}

ProcessGroups& SingleProcessGroups() {
  static ProcessGroups* const groups = [] {
    static SingleProcessCommunicator world("world");
    absl::StatusOr<ProcessGrid> grid = ProcessGrid::Create(1, 0, 1, 1);
    AOETRON_CHECK(grid.ok()) << grid.status().message();
    absl::StatusOr<ProcessGroups> created = CreateProcessGroups(*grid, world);
    AOETRON_CHECK(created.ok()) << created.status().message();
    return new ProcessGroups(std::move(*created));
  }();
  return *groups;
}

}  // namespace aoetron::parallel
