#include "parallel/process_groups.h"

#ifdef AOETRON_HAVE_NCCL
#include "parallel/nccl/nccl_communicator.h"
#endif

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "parallel/abort.h"
#include "parallel/single_process_communicator.h"

namespace aoetron::parallel {

Communicator& ProcessGroups::Get(GroupKind kind) {
  const size_t k = static_cast<size_t>(kind);
  return device_[k] != nullptr ? *device_[k] : *host_[k];
}

Communicator& ProcessGroups::Host(GroupKind kind) { return *host_[static_cast<size_t>(kind)]; }

absl::StatusOr<ProcessGroups> CreateProcessGroups(const ProcessGrid& grid, Communicator& world,
                                                  CollectiveBackend backend) {
  if (grid.world_size() != world.size() || grid.rank() != world.rank()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the process grid (", grid.DebugString(), ") does not match the world communicator (rank ",
        world.rank(), " of ", world.size(), ")"));
  }
#ifndef AOETRON_HAVE_NCCL
  if (backend == CollectiveBackend::kNccl) {
    return absl::FailedPreconditionError(
        "parallel.device=cuda needs the NCCL backend, and this build has none (NCCL was not found "
        "beside the CUDA toolkit when it was configured)");
  }
#endif
  ProcessGroups groups(grid);
  groups.backend_ = backend;
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
    const size_t k = static_cast<size_t>(kind);
    groups.host_[k] = std::move(comm);
#ifdef AOETRON_HAVE_NCCL
    if (backend == CollectiveBackend::kNccl) {
      groups.device_[k] = NcclCommunicator::Create(*groups.host_[k]);
    }
#endif
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
