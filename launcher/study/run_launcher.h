// The seam between the study and whatever starts its training jobs. The study asks a RunLauncher
// to start one job per run and polls it; LocalMpiLauncher runs `mpirun -np N aoetron-train ...`
// on this machine. A batch system (Slurm: sbatch, then squeue/sacct) implements the same two
// calls; nothing else in the study knows how a job is started.
//
// Contracts:
//  - Launch() starts the job and returns at once. The job appends its stdout and stderr to
//    request.log_path. An error means nothing was started.
//  - LaunchedJob::Poll() never blocks: nullopt while the job runs, then its exit (once; later
//    calls return the same exit).
//  - LaunchedJob::RequestStop() asks the job to stop as SIGTERM would (the trainer saves a
//    checkpoint); Poll() reports when it has.
//  - Destroying a LaunchedJob that has not exited leaves the job running.
// Thread safety: one thread drives a launcher and its jobs.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace aoetron::study {

struct LaunchRequest {
  std::string name;                       // the run's name (for a batch system's job name)
  int ranks = 1;                          // processes (mpirun -np)
  std::vector<std::string> trainer_args;  // after the trainer binary: --config X --resume auto
  std::string log_path;                   // stdout and stderr, appended
};

struct JobExit {
  int exit_code = -1;  // the job's exit status; -1 when it was killed by a signal
  int signal = 0;      // the signal that killed it, else 0
  double wall_seconds = 0.0;
  int64_t peak_rss_kib = 0;  // largest resident set of one process of the job; 0: unknown
};

class LaunchedJob {
 public:
  virtual ~LaunchedJob() = default;
  virtual std::optional<JobExit> Poll() = 0;
  virtual void RequestStop() = 0;
};

class RunLauncher {
 public:
  virtual ~RunLauncher() = default;
  virtual absl::StatusOr<std::unique_ptr<LaunchedJob>> Launch(const LaunchRequest& request) = 0;
  // The command the launch runs, for logs and for users to rerun one run by hand.
  virtual std::string Describe(const LaunchRequest& request) const = 0;
};

// `mpirun [mpirun_args] -np N train_binary trainer_args...` as a child process in the study's
// process group (so a signal to the group reaches the job too). An empty `mpirun` runs the
// trainer directly (one rank only). Peak memory comes from wait4's rusage: the largest process
// that mpirun waited for (its ranks) or mpirun itself.
class LocalMpiLauncher : public RunLauncher {
 public:
  LocalMpiLauncher(std::string mpirun, std::vector<std::string> mpirun_args,
                   std::string train_binary);
  absl::StatusOr<std::unique_ptr<LaunchedJob>> Launch(const LaunchRequest& request) override;
  std::string Describe(const LaunchRequest& request) const override;

 private:
  std::vector<std::string> Command(const LaunchRequest& request) const;
  std::string mpirun_;
  std::vector<std::string> mpirun_args_;
  std::string train_binary_;
};

}  // namespace aoetron::study
