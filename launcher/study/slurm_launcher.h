// SlurmLauncher: the study's runs as Slurm batch jobs, through the same job script users submit
// by hand (scripts/slurm/aoetron.sbatch: srun --mpi=pmix, --resume auto, checkpoint and requeue
// before the time limit and on preemption). docs/scaling_study.md, "Batch systems".
//
//   Launch       sbatch --parsable --job-name=<run> --ntasks=<ranks> --output=<log>
//                       --open-mode=append [sbatch_args] <job_script> <trainer args>
//                with AOETRON_TRAIN=<train binary> in the job's environment; the job id is
//                sbatch's answer.
//   Poll         `scontrol show job -o <id>`, at most every poll_seconds: PENDING, RUNNING,
//                REQUEUED, COMPLETING, ... are "running" (a job that requeued itself before
//                its time limit is still the same run); COMPLETED is exit 0; FAILED, CANCELLED,
//                TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, PREEMPTED, ... give ExitCode's status and
//                signal (status -1 when it is 0 but the job did not complete). A job Slurm no
//                longer knows (purged after MinJobAge) has ended: exit -1.
//   RequestStop  a pending job is cancelled; a running one's job script gets SIGUSR2
//                (`scancel --batch --signal=USR2`), passes SIGUSR1 to the ranks through srun,
//                and they save a checkpoint and exit 0; the run stays unfinished and resumes on
//                the next `aoetron-study run`.
// Peak memory is not known to Slurm without accounting: the trainer's own peak_rss_bytes (in
// the metrics) is what the report uses.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "launcher/study/run_launcher.h"

namespace aoetron::study {

// Slurm's clients (sbatch, scontrol, scancel) are taken from PATH.
struct SlurmLauncherOptions {
  std::vector<std::string> sbatch_args;  // before the job script, e.g. "--partition=gpu"
  std::string job_script;                // scripts/slurm/aoetron.sbatch or a copy of it
  std::string train_binary;              // AOETRON_TRAIN in the job's environment
  double poll_seconds = 2.0;             // scontrol at most this often per job
};

class SlurmLauncher : public RunLauncher {
 public:
  explicit SlurmLauncher(SlurmLauncherOptions options);
  absl::StatusOr<std::unique_ptr<LaunchedJob>> Launch(const LaunchRequest& request) override;
  std::string Describe(const LaunchRequest& request) const override;

 private:
  std::vector<std::string> SbatchCommand(const LaunchRequest& request) const;
  SlurmLauncherOptions options_;
};

// The state and exit of one `scontrol show job -o` line ("JobId=12 JobName=x ... JobState=
// COMPLETED Reason=None ... ExitCode=0:0 ..."): nullopt while the job has not ended.
// Exposed for tests.
std::optional<JobExit> JobExitFromScontrol(const std::string& line);

}  // namespace aoetron::study
