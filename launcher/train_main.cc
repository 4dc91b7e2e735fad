// aoetron-train: trains a model from a config, or measures its throughput (--bench), in one
// process or as every rank of an MPI job (mpirun -np N aoetron-train ...; docs/training.md).
//
// Exit status: 0 on success (also after SIGTERM/SIGINT/SIGUSR1: every rank finishes the current
// step, a checkpoint is saved when checkpoint.dir is set, and the run ends); 1 for a bad command
// line or config, or a run that stopped on an error (the message on stderr names the cause, the
// field or the step, and in a multi-rank job the rank).
//
// Failure in a multi-rank job:
//  - Problems every rank finds alike (command line, config, an impossible tp × ep layout for
//    the world size) are printed once, by rank 0, before any work; every rank exits 1.
//  - Anything else on any rank (a data error, an exception, a non-finite loss, which every rank
//    detects at the same step) ends the whole job through parallel::AbortAll: "rank R: cause",
//    every rank gone within seconds (docs/parallel.md). Never a plain return while other ranks
//    may be waiting in a collective.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/device_transfer.h"
#include "launcher/bench.h"
#include "launcher/checkpoint/checkpoint_manager.h"
#include "launcher/config_loader.h"
#include "launcher/config_validation.h"
#include "launcher/job_launch.h"
#include "launcher/trainer.h"
#include "parallel/abort.h"
#include "parallel/distributed.h"
#include "parallel/process_grid.h"
#include "parallel/process_groups.h"

ABSL_FLAG(std::string, config, "",
          "Training config in protobuf text format (configs/*.textproto). Without it, every "
          "field starts at its default (docs/config.md).");
// Only for --help: every --set is taken out of argv before absl sees it (see ExtractSetFlags),
// because absl's list flags split on commas and a value may contain one.
ABSL_FLAG(std::string, set, "",
          "Override one config field: --set section.field=value (e.g. --set model.n_layers=8 "
          "--set schedule.decay=wsd). Repeatable; applied in order after --config, the last "
          "one for a field wins.");
ABSL_FLAG(bool, bench, false,
          "Measure training throughput instead of training: synthetic data, "
          "--bench_warmup_steps untimed steps, then --bench_steps timed steps; prints one JSON "
          "line (tokens_per_s, step_s, model_flops_per_s, peak_rss_bytes, threads, config, ...).");
ABSL_FLAG(int64_t, bench_steps, 10, "Timed optimizer steps in --bench mode.");
ABSL_FLAG(int64_t, bench_warmup_steps, 2, "Untimed warm-up steps in --bench mode.");
ABSL_FLAG(bool, print_config, false,
          "Print the resolved config (every field, defaults included) as text format and exit.");
ABSL_FLAG(int64_t, stop_after_step, 0,
          "Stop after this step as SIGTERM would (save a checkpoint when checkpoint.dir is set, "
          "exit 0); the schedule still spans train.steps, so --resume auto continues the same "
          "run. 0: run to train.steps.");
ABSL_FLAG(std::string, resume, "",
          "Continue a run from a checkpoint: 'auto' = the newest complete checkpoint under "
          "checkpoint.dir (none: start fresh, with a note), or a path: a step directory "
          "(<dir>/step_<N>) or a checkpoint root (its newest complete one). The run continues at "
          "step N+1 on the same data; any parallel layout may load it (docs/training.md).");

namespace {

// Set by SIGTERM / SIGINT / SIGUSR1; the trainer checks it once per step (agreed over every rank),
// saves a checkpoint and returns, and the process exits 0. SIGUSR1 is the batch systems' "time is
// nearly up" warning (`sbatch --signal=USR1@120`; mpirun and srun pass it on to every rank).
volatile std::sig_atomic_t g_stop_requested = 0;

void RequestStop(int) { g_stop_requested = 1; }

void InstallStopHandlers() {
  struct sigaction action = {};
  action.sa_handler = RequestStop;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
}

constexpr char kUsage[] =
    "trains a Mixture-of-Experts (dense, router MoE or Autonomy-of-Experts) GPT model.\n"
    "\n"
    "  aoetron-train --config configs/tiny_aoe.textproto\n"
    "  aoetron-train --config configs/tiny_aoe.textproto --set train.steps=50 --set "
    "optimizer.lr=1e-3\n"
    "  aoetron-train --config configs/bench_aoe_small.textproto --bench\n"
    "  aoetron-train --config configs/tiny_aoe.textproto --print_config\n"
    "  mpirun -np 2 aoetron-train --config configs/quickstart_aoe.textproto   # data parallel\n"
    "\n"
    "Logged steps go to stdout (a progress line on a terminal, JSON lines otherwise; see\n"
    "logging.progress) and as JSON lines to the metrics file (logging.metrics_file; default\n"
    "<checkpoint.dir>/metrics.jsonl, else ./metrics.jsonl). Config fields: docs/config.md;\n"
    "the loop, log fields and FLOP accounting: docs/training.md.";

constexpr char kProgram[] = "aoetron-train";

int Train(aoetron::parallel::DistributedContext& context,
          const aoetron::config::TrainConfig& config, aoetron::TrainerParallelism& parallelism) {
  namespace launch = aoetron::launch;
  if (absl::GetFlag(FLAGS_bench)) {
    aoetron::BenchOptions options;
    options.warmup_steps = absl::GetFlag(FLAGS_bench_warmup_steps);
    options.timed_steps = absl::GetFlag(FLAGS_bench_steps);
    absl::StatusOr<aoetron::BenchResult> result = aoetron::RunBench(config, options, parallelism);
    if (!result.ok()) return launch::FailRun(context, kProgram, result.status());
    if (context.world_rank() == 0) std::cout << aoetron::BenchResultJson(*result) << std::endl;
  } else {
    aoetron::TrainerIo io;
    io.out_is_terminal = isatty(STDOUT_FILENO) == 1;
    aoetron::TrainerOptions options;
    absl::StatusOr<std::string> resume = launch::ResolveCheckpoint(
        context, kProgram, config.checkpoint().dir(), absl::GetFlag(FLAGS_resume));
    if (!resume.ok()) return launch::FailRun(context, kProgram, resume.status());
    options.resume_from = *resume;
    options.stop_requested = &g_stop_requested;
    options.stop_after_step = absl::GetFlag(FLAGS_stop_after_step);
    aoetron::config::TrainConfig run_config = config;
    if (run_config.checkpoint().async() && context.world_size() > 1 &&
        context.thread_level() != "MPI_THREAD_MULTIPLE") {
      // Background saves make MPI calls from a second thread.
      if (context.world_rank() == 0) {
        std::cerr << "aoetron-train: note: MPI granted " << context.thread_level()
                  << ", not MPI_THREAD_MULTIPLE; checkpoints are saved synchronously" << std::endl;
      }
      run_config.mutable_checkpoint()->set_async(false);
    }
    absl::StatusOr<std::unique_ptr<aoetron::Trainer>> trainer =
        aoetron::Trainer::Create(run_config, io, parallelism, options);
    if (!trainer.ok()) return launch::FailRun(context, kProgram, trainer.status());
    absl::StatusOr<aoetron::TrainSummary> summary = (*trainer)->Train();
    if (!summary.ok()) return launch::FailRun(context, kProgram, summary.status());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::StatusOr<std::vector<std::string>> parsed = aoetron::launch::ParseProgramCommandLine(
      &argc, argv, "train_main", kUsage, "; the config is given with --config FILE (see --help)");
  if (!parsed.ok()) {
    return aoetron::launch::FailBeforeMpi(kProgram, std::string(parsed.status().message()));
  }
  const std::vector<std::string>& overrides = *parsed;

  absl::StatusOr<aoetron::config::TrainConfig> config = aoetron::LoadTrainConfig(
      absl::GetFlag(FLAGS_config), overrides, aoetron::launch::LauncherWorldSize());
  if (!config.ok()) {
    return aoetron::launch::FailBeforeMpi(kProgram, std::string(config.status().message()));
  }
  if (absl::GetFlag(FLAGS_print_config)) {
    if (aoetron::launch::LauncherRank() == 0) std::cout << aoetron::ResolvedConfigText(*config);
    return 0;
  }

  aoetron::parallel::DistributedOptions options;
  options.collective_timeout = absl::Seconds(config->parallel().collective_timeout_s());
  absl::StatusOr<aoetron::parallel::DistributedContext> context =
      aoetron::parallel::InitializeDistributed(&argc, &argv, options);
  if (!context.ok()) {
    return aoetron::launch::FailBeforeMpi(kProgram, std::string(context.status().message()));
  }
  InstallStopHandlers();
  // Groups and the trainer live inside, so they are gone before Finalize.
  const int status = aoetron::launch::RunWithProcessGroups(
      *context, *config, kProgram, [&](aoetron::TrainerParallelism& parallelism) {
        return Train(*context, *config, parallelism);
      });
  const bool finalized = context->Finalize().ok();
  return status != 0 ? status : (finalized ? 0 : 1);
}
