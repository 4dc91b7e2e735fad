#include "parallel/distributed.h"

#include <unistd.h>

#include <atomic>
#include <climits>

#include "absl/strings/str_cat.h"
#include "parallel/abort.h"
#include "parallel/single_process_communicator.h"

#if AOETRON_HAVE_MPI
#include <mpi.h>

#include "parallel/mpi/mpi_communicator.h"
#endif

namespace aoetron::parallel {

struct DistributedContext::State {
  int world_rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_size = 1;
  std::string hostname;
  std::string thread_level = "none";
  CollectiveOptions options;
  std::unique_ptr<Watchdog> watchdog;
  std::unique_ptr<Communicator> world;
  bool finalized = false;
};

namespace {

std::atomic<bool> g_initialized{false};

std::string HostName() {
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "unknown-host";
  return name;
}

#if AOETRON_HAVE_MPI
std::string MpiErrorText(int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(rc, text, &length) != MPI_SUCCESS) return absl::StrCat("MPI error ", rc);
  return std::string(text, static_cast<size_t>(length));
}

// After MPI_Init, a failure ends the job like any other: the other ranks may already be waiting.
void CheckStartup(int rc, int world_rank, const char* call) {
  if (rc == MPI_SUCCESS) return;
  AbortAllWithMessage(
      absl::StrCat("rank ", world_rank, " (group world): ", call, " failed: ", MpiErrorText(rc)));
}

const char* ThreadLevelName(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE:
      return "MPI_THREAD_SINGLE";
    case MPI_THREAD_FUNNELED:
      return "MPI_THREAD_FUNNELED";
    case MPI_THREAD_SERIALIZED:
      return "MPI_THREAD_SERIALIZED";
    case MPI_THREAD_MULTIPLE:
      return "MPI_THREAD_MULTIPLE";
  }
  return "unknown";
}
#endif

}  // namespace

DistributedContext::DistributedContext(std::unique_ptr<State> state) : state_(std::move(state)) {}
DistributedContext::DistributedContext(DistributedContext&&) noexcept = default;
DistributedContext& DistributedContext::operator=(DistributedContext&&) noexcept = default;

DistributedContext::~DistributedContext() {
  if (state_ == nullptr || state_->finalized) return;
  const absl::Status status = Finalize();
  if (!status.ok()) AbortAll(status);
}

int DistributedContext::world_rank() const { return state_->world_rank; }
int DistributedContext::world_size() const { return state_->world_size; }
int DistributedContext::local_rank() const { return state_->local_rank; }
int DistributedContext::local_size() const { return state_->local_size; }
const std::string& DistributedContext::hostname() const { return state_->hostname; }
const std::string& DistributedContext::thread_level() const { return state_->thread_level; }
Communicator& DistributedContext::world() { return *state_->world; }
Watchdog& DistributedContext::watchdog() { return *state_->watchdog; }
const CollectiveOptions& DistributedContext::collective_options() const { return state_->options; }

absl::Status DistributedContext::Finalize() {
  if (state_ == nullptr || state_->finalized) return absl::OkStatus();
  state_->finalized = true;
  state_->world.reset();
#if AOETRON_HAVE_MPI
  int rc;
  {
    // MPI_Finalize synchronises with the other ranks; a rank that never gets there must not
    // leave this one waiting forever.
    ScopedDeadline deadline(state_->watchdog.get(), "MPI_Finalize",
                            state_->options.collective_timeout);
    rc = MPI_Finalize();
  }
  state_->watchdog.reset();
  if (rc != MPI_SUCCESS) {
    return absl::InternalError(
        absl::StrCat("rank ", state_->world_rank, ": MPI_Finalize failed: ", MpiErrorText(rc)));
  }
#else
  state_->watchdog.reset();
#endif
  return absl::OkStatus();
}

absl::StatusOr<DistributedContext> InitializeDistributed(int* argc, char*** argv,
                                                         const DistributedOptions& options) {
  if (g_initialized.exchange(true)) {
    return absl::FailedPreconditionError(
        "InitializeDistributed was already called in this process (MPI starts once)");
  }
  auto state = std::make_unique<DistributedContext::State>();
  state->hostname = HostName();
#if AOETRON_HAVE_MPI
  int provided = MPI_THREAD_SINGLE;
  const int rc = MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
  if (rc != MPI_SUCCESS) {
    return absl::InternalError(
        absl::StrCat("MPI_Init_thread failed on ", state->hostname, ": error code ", rc));
  }
  state->thread_level = ThreadLevelName(provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &state->world_rank);
  SetFailureIdentity(state->world_rank);
  InstallTerminateHandler();
  const int r = state->world_rank;
  CheckStartup(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), r,
               "MPI_Comm_set_errhandler");
  CheckStartup(MPI_Comm_size(MPI_COMM_WORLD, &state->world_size), r, "MPI_Comm_size");

  MPI_Comm node = MPI_COMM_NULL;
  CheckStartup(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, r, MPI_INFO_NULL, &node),
               r, "MPI_Comm_split_type");
  CheckStartup(MPI_Comm_rank(node, &state->local_rank), r, "MPI_Comm_rank");
  CheckStartup(MPI_Comm_size(node, &state->local_size), r, "MPI_Comm_size");
  CheckStartup(MPI_Comm_free(&node), r, "MPI_Comm_free");

  state->watchdog = std::make_unique<Watchdog>();
  state->options.watchdog = state->watchdog.get();
  state->options.collective_timeout = options.collective_timeout;
  state->options.check_agreement = options.check_collective_agreement;
  state->options.reduction_segment_bytes = options.reduction_segment_bytes;

  MPI_Comm world = MPI_COMM_NULL;
  CheckStartup(MPI_Comm_dup(MPI_COMM_WORLD, &world), r, "MPI_Comm_dup");
  state->world =
      std::make_unique<MpiCommunicator>(world, /*take_ownership=*/true, "world", state->options);
#else
  SetFailureIdentity(0);
  InstallTerminateHandler();
  state->watchdog = std::make_unique<Watchdog>();
  state->options.watchdog = state->watchdog.get();
  state->options.collective_timeout = options.collective_timeout;
  state->options.check_agreement = options.check_collective_agreement;
  state->options.reduction_segment_bytes = options.reduction_segment_bytes;
  state->world = std::make_unique<SingleProcessCommunicator>("world");
#endif
  return DistributedContext(std::move(state));
}

}  // namespace aoetron::parallel
