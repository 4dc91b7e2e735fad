#include "parallel/abort.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <thread>

#include "absl/strings/str_cat.h"

#if AOETRON_HAVE_MPI
#include <mpi.h>
#endif

namespace aoetron::parallel {
namespace {

std::atomic<int> g_world_rank{-1};
std::atomic<bool> g_aborting{false};

// Writes the whole line with one write(2), so lines from different ranks sharing a terminal or
// log file do not interleave mid-line.
void WriteLine(const std::string& message) {
  std::string line = message;
  if (line.empty() || line.back() != '\n') line += '\n';
  std::fflush(stdout);
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) break;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

void TerminateHandler() {
  std::string cause = "std::terminate called without an active exception";
  if (std::exception_ptr current = std::current_exception()) {
    try {
      std::rethrow_exception(current);
    } catch (const std::exception& e) {
      cause = absl::StrCat("uncaught exception: ", e.what());
    } catch (...) {
      cause = "uncaught exception of a type not derived from std::exception";
    }
  }
  AbortAll(cause);
}

}  // namespace

void SetFailureIdentity(int world_rank) { g_world_rank.store(world_rank); }

std::string FailurePrefix() {
  const int rank = g_world_rank.load();
  if (rank < 0) return absl::StrCat("process ", ::getpid());
  return absl::StrCat("rank ", rank);
}

void AbortAll(const std::string& cause) { AbortAllWithMessage(FailurePrefix() + ": " + cause); }

void AbortAll(const absl::Status& status) { AbortAll(status.ToString()); }

void AbortAllWithMessage(const std::string& message) {
  if (g_aborting.exchange(true)) {
    // Another thread is already ending the job; its message is the one that matters.
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  WriteLine(message);
  // Backstop: should MPI_Abort fail to end this process (e.g. the launcher is unreachable),
  // SIGALRM's default action does; the launcher then sees this rank die and ends the rest.
  ::alarm(kAbortBackstopSeconds);
#if AOETRON_HAVE_MPI
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, 1);
#endif
  std::_Exit(1);
}

void InstallTerminateHandler() { std::set_terminate(TerminateHandler); }

}  // namespace aoetron::parallel
