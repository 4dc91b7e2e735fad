// ProcessGroups: the communicators of one rank's groups, built once from a ProcessGrid.
//
// Usage, once at start-up on every rank:
//     ASSIGN_OR_RETURN(ProcessGrid grid, ProcessGrid::Create(ctx.world_size(), ctx.world_rank(),
//                                                             config.tp, config.ep));
//     ASSIGN_OR_RETURN(ProcessGroups groups, CreateProcessGroups(grid, ctx.world()));
//     groups.data_parallel().AllReduce(replicated_grads, ReduceOp::kSum);
// Which group does what is documented on GroupKind (process_grid.h).
// Ownership: ProcessGroups owns its communicators; destroy it before finalizing the
// distributed context. Not thread-safe beyond what Communicator allows.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "parallel/communicator.h"
#include "parallel/process_grid.h"

namespace aoetron::parallel {

class ProcessGroups {
 public:
  const ProcessGrid& grid() const { return grid_; }
  Communicator& tensor_parallel() { return *tp_; }
  Communicator& data_parallel() { return *dp_; }
  Communicator& expert_parallel() { return *ep_; }
  Communicator& expert_data_parallel() { return *edp_; }
  Communicator& Get(GroupKind kind);

 private:
  friend absl::StatusOr<ProcessGroups> CreateProcessGroups(const ProcessGrid&, Communicator&);
  explicit ProcessGroups(const ProcessGrid& grid) : grid_(grid) {}

  ProcessGrid grid_;
  std::unique_ptr<Communicator> tp_;
  std::unique_ptr<Communicator> dp_;
  std::unique_ptr<Communicator> ep_;
  std::unique_ptr<Communicator> edp_;
};

// Collective over `world`: every rank calls it with its own grid (same tp and ep everywhere).
// Splits `world` once per group kind; the new communicators are named "tp", "dp", "ep", "edp"
// and inherit world's options (watchdog, timeouts). FailedPrecondition if the grid's world size
// or rank differ from world's. A grid that disagrees across ranks (different tp or ep) is
// caught by the size check after the split and ends the job (a programming error).
absl::StatusOr<ProcessGroups> CreateProcessGroups(const ProcessGrid& grid, Communicator& world);

// The groups of a world of one (tp = ep = dp = 1), every one a SingleProcessCommunicator: what
// single-process code (tests, one-rank tools) hands to models. Created on first use, lives for
// the process; needs no MPI. Not thread-safe to use concurrently (a Communicator contract).
ProcessGroups& SingleProcessGroups();

}  // namespace aoetron::parallel
