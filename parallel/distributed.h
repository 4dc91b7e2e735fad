// Start-up and shutdown of a distributed job.
//
//     int main(int argc, char** argv) {
//       absl::StatusOr<DistributedContext> ctx = InitializeDistributed(&argc, &argv);
//       if (!ctx.ok()) { std::cerr << ctx.status() << "\n"; return 1; }  // nothing started yet
//       absl::Status status = Train(*ctx, ...);
//       if (!status.ok()) AbortAll(status);  // never `return 1` while peers may be waiting
//       return ctx->Finalize().ok() ? 0 : 1;
//     }
//
// InitializeDistributed calls MPI_Init_thread (asking for MPI_THREAD_MULTIPLE, so the watchdog
// may call MPI_Abort from its own thread), sets MPI_ERRORS_RETURN on MPI_COMM_WORLD, finds this
// process's world rank and size, its rank among the processes on the same node (local rank, via
// MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)), and the host name. It installs the terminate
// handler (abort.h), starts the collective watchdog and creates the world communicator (a
// duplicate of MPI_COMM_WORLD, so our traffic never mixes with another library's).
// Run without mpirun it is a world of one (MPI singleton init). In a build without MPI the world
// is a SingleProcessCommunicator.
// One context per process: MPI cannot be initialized twice, not even after finalizing.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "parallel/collective_options.h"
#include "parallel/communicator.h"
#include "parallel/watchdog.h"

namespace aoetron::parallel {

struct DistributedOptions {
  // Longest a single collective may take before the watchdog ends the job (infinite: never).
  absl::Duration collective_timeout = absl::Seconds(600);
  // Compare a fingerprint of every collective across ranks before running it (tests, debugging;
  // see CollectiveOptions::check_agreement).
  bool check_collective_agreement = false;
  // Bound on the scratch memory of reductions (CollectiveOptions::reduction_segment_bytes).
  int64_t reduction_segment_bytes = int64_t{64} << 20;
};

class DistributedContext {
 public:
  DistributedContext(DistributedContext&&) noexcept;
  DistributedContext& operator=(DistributedContext&&) noexcept;
  // Finalizes if Finalize() was not called; failures there end the job.
  ~DistributedContext();

  int world_rank() const;
  int world_size() const;
  int local_rank() const;  // rank among the processes of this node
  int local_size() const;  // processes on this node
  const std::string& hostname() const;
  // The MPI thread level granted ("MPI_THREAD_MULTIPLE", ...; "none" without MPI).
  const std::string& thread_level() const;

  // All ranks of the job, named "world". Valid until Finalize().
  Communicator& world();
  // The watchdog every collective arms; the trainer arms step deadlines on it (ScopedDeadline).
  Watchdog& watchdog();
  // The options given to every communicator split from world().
  const CollectiveOptions& collective_options() const;

  // Collective over the world: destroys the world communicator, stops the watchdog and
  // finalizes MPI. Every communicator split from world() must be destroyed first. The call is
  // itself guarded by the watchdog (collective_timeout). Idempotent.
  absl::Status Finalize();

 private:
  struct State;
  friend absl::StatusOr<DistributedContext> InitializeDistributed(int*, char***,
                                                                  const DistributedOptions&);
  explicit DistributedContext(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// Errors: FailedPrecondition when called a second time in the process; Internal when MPI cannot
// start (the message carries MPI's). On error nothing needs finalizing.
absl::StatusOr<DistributedContext> InitializeDistributed(int* argc, char*** argv,
                                                         const DistributedOptions& options = {});

}  // namespace aoetron::parallel
