// Ending the whole job when anything goes wrong on any rank.
//
// Failure anywhere ends everything, fast: a rank that cannot go on (bad input, an exception, a
// NaN loss, a failed collective, a stalled step) calls AbortAll, which prints one line naming
// the rank and the cause on stderr and asks the launcher to kill every rank of the job
// (MPI_Abort on MPI_COMM_WORLD). A rank must never simply return from main with an error while
// others may still be waiting for it in a collective: that is how jobs hang.
//
// What ends the job, and how (measured timings in docs/parallel.md):
//  - AbortAll(...) from any thread: "rank R: <cause>", then MPI_Abort. If MPI_Abort itself does
//    not end this process within kAbortBackstopSeconds, SIGALRM does.
//  - An uncaught exception: the terminate handler (InstallTerminateHandler) calls AbortAll with
//    the exception's what().
//  - A fatal signal (SIGKILL, SIGSEGV, SIGABRT from AOETRON_CHECK): the process dies; mpirun
//    notices and kills the other ranks, naming the rank and the signal.
//  - A hang: the collective watchdog (watchdog.h) calls AbortAll naming the stuck call.
// Without MPI (or before MPI_Init, or after MPI_Finalize) AbortAll ends only this process, with
// exit status 1.
// Thread safety: every function here may be called from any thread. If several threads abort at
// once, the first message wins and the others wait for the end.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace aoetron::parallel {

inline constexpr unsigned kAbortBackstopSeconds = 30;

// Records this process's world rank for the "rank R:" prefix (InitializeDistributed does this).
// Before it is called, messages say "process <pid>:" instead.
void SetFailureIdentity(int world_rank);
// "rank R" (or "process <pid>"): the prefix of every failure message.
std::string FailurePrefix();

// Prints "rank R: <cause>" and ends the job. Never returns.
[[noreturn]] void AbortAll(const std::string& cause);
// Prints "rank R: <status.ToString()>" and ends the job. Never returns.
[[noreturn]] void AbortAll(const absl::Status& status);
// Prints `message` exactly as given (it names the rank itself, e.g. "rank 3 (group dp): ...")
// and ends the job. Never returns.
[[noreturn]] void AbortAllWithMessage(const std::string& message);

// Makes std::terminate (an uncaught exception, a throwing destructor, ...) end the whole job via
// AbortAll with the exception's message. Idempotent.
void InstallTerminateHandler();

}  // namespace aoetron::parallel
