// Executes a study plan: one training job per run, one after another, each in its own directory
// under the output directory:
//
//   <out>/<run name>/config.textproto   the resolved TrainConfig the job was launched with
//                    status.textproto   RunStatus (run_status.h)
//                    metrics.jsonl      the trainer's metrics (logging.metrics_file)
//                    train.log          the job's stdout and stderr, every launch appended
//                    checkpoints/       checkpoint.dir
//   <out>/plan.txt                      the plan table of the last `run`
//
// Restarting a study is safe at any moment (even after SIGKILL of the whole process group):
// finished runs are skipped, unfinished ones are launched again with --resume auto (from their
// newest complete checkpoint, or fresh when they have none), and failed ones are skipped with
// their error unless execution.retry_failed. A run counts as finished when its job exits 0 and
// its metrics file has reached train.steps; a job that fails is recorded as failed (status file
// with the end of its output) and the study goes on with the next run.
//
// Thread safety: one RunStudy at a time per output directory; not thread-safe.
#pragma once

#include <csignal>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "launcher/config.pb.h"
#include "launcher/study/run_launcher.h"
#include "launcher/study/study_plan.h"

namespace aoetron::study {

struct RunnerOptions {
  std::string out_dir;
  std::ostream* progress = nullptr;  // required
  // Progress as one line rewritten in place (a terminal), else a line every few seconds.
  bool terminal = false;
  double poll_seconds = 0.5;
  double quiet_progress_seconds = 5.0;  // non-terminal: at most one progress line this often
  // Set (by a signal handler) to stop: the running job is asked to stop and saves a checkpoint,
  // its run stays unfinished, and RunStudy returns.
  const volatile std::sig_atomic_t* stop_requested = nullptr;
};

struct StudyOutcome {
  int finished = 0;    // finished now or before
  int failed = 0;      // failed now or before (skipped)
  int unfinished = 0;  // stopped before their last step (a rerun resumes them)
  bool interrupted = false;
};

// An error only for problems of the study itself (an unwritable directory); a failing run is
// not one (it is counted in `failed`).
absl::StatusOr<StudyOutcome> RunStudy(const StudyPlan& plan, RunLauncher& launcher,
                                      const RunnerOptions& options);

// The TrainConfig a run is launched with: the plan's, with checkpoint.dir, logging.metrics_file
// inside `run_dir` (made absolute) and JSON progress lines (the log is a file).
config::TrainConfig RunConfig(const PlannedRun& run, const std::string& run_dir);

}  // namespace aoetron::study
