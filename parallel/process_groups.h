// ProcessGroups: the communicators of one rank's groups, built once from a ProcessGrid.
//
// Usage, once at start-up on every rank:
//     ASSIGN_OR_RETURN(ProcessGrid grid, ProcessGrid::Create(ctx.world_size(), ctx.world_rank(),
//                                                             config.tp, config.ep));
//     ASSIGN_OR_RETURN(ProcessGroups groups, CreateProcessGroups(grid, ctx.world()));
//     groups.data_parallel().AllReduce(replicated_grads, ReduceOp::kSum);
// Which group does what is documented on GroupKind (process_grid.h).
//
// Each group has two communicators (issue: a GPU run's host metadata must not go through NCCL):
//   device  for tensors on the model's device: activations, gradients, parameters, the
//           all-to-all payloads. NCCL on a CUDA run (CollectiveBackend::kNccl), else the host one.
//   host    MPI (or the single-process stand-in) for host buffers: the exchanged counts, flags,
//           f64 statistics (routing sums, loss and norm terms, expert-load summaries).
// On a CPU run both are one communicator. The named accessors and Get give the device one.
// Ownership: ProcessGroups owns its communicators; destroy it before finalizing the
// distributed context. Not thread-safe beyond what Communicator allows.
#pragma once

#include <array>
#include <memory>

#include "absl/status/statusor.h"
#include "parallel/communicator.h"
#include "parallel/process_grid.h"

namespace aoetron::parallel {

// Which communicator carries device tensors (see above).
enum class CollectiveBackend {
  kHost,  // the host communicator (MPI / single process) for everything: CPU runs
  kNccl,  // NCCL for device tensors, built over each group's host communicator: CUDA runs
};

class ProcessGroups {
 public:
  const ProcessGrid& grid() const { return grid_; }
  // The device communicators.
  Communicator& tensor_parallel() { return Get(GroupKind::kTensorParallel); }
  Communicator& data_parallel() { return Get(GroupKind::kDataParallel); }
  Communicator& expert_parallel() { return Get(GroupKind::kExpertParallel); }
  Communicator& expert_data_parallel() { return Get(GroupKind::kExpertDataParallel); }
  Communicator& Get(GroupKind kind);
  // The host communicator of a group: for host buffers (counts, flags, statistics).
  Communicator& Host(GroupKind kind);
  CollectiveBackend backend() const { return backend_; }

 private:
  friend absl::StatusOr<ProcessGroups> CreateProcessGroups(const ProcessGrid&, Communicator&,
                                                           CollectiveBackend);
  explicit ProcessGroups(const ProcessGrid& grid) : grid_(grid) {}

  ProcessGrid grid_;
  CollectiveBackend backend_ = CollectiveBackend::kHost;
  // Indexed by GroupKind; device_[k] is null when the host communicator carries device tensors.
  std::array<std::unique_ptr<Communicator>, 4> host_;
  std::array<std::unique_ptr<Communicator>, 4> device_;
};

// Collective over `world`: every rank calls it with its own grid (same tp and ep everywhere).
// Splits `world` once per group kind; the new communicators are named "tp", "dp", "ep", "edp"
// and inherit world's options (watchdog, timeouts). With kNccl each group's NCCL communicator is
// then bootstrapped from its host communicator on the current CUDA device (collective).
// FailedPrecondition if the grid's world size or rank differ from world's, or kNccl in a build
// without NCCL. A grid that disagrees across ranks (different tp or ep) is
// caught by the size check after the split and ends the job (a programming error).
absl::StatusOr<ProcessGroups> CreateProcessGroups(
    const ProcessGrid& grid, Communicator& world,
    CollectiveBackend backend = CollectiveBackend::kHost);

// The groups of a world of one (tp = ep = dp = 1), every one a SingleProcessCommunicator: what
// single-process code (tests, one-rank tools) hands to models. Created on first use, lives for
// the process; needs no MPI. Not thread-safe to use concurrently (a Communicator contract).
ProcessGroups& SingleProcessGroups();

}  // namespace aoetron::parallel
