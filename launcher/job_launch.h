// What every aoetron program that runs as the ranks of an MPI job (aoetron-train, aoetron-eval)
// does around its own work: the command line's --set overrides, the launcher's rank and size
// before MPI starts, failing cleanly before and after MPI, resolving --resume, and building the
// process groups of a config's layout.
//
// Failure policy (docs/parallel.md): problems every rank finds alike (command line, config, an
// impossible layout) are printed once, by rank 0, and every rank exits 1; anything else after
// MPI started ends the whole job through parallel::AbortAll, never a plain return while other
// ranks may wait in a collective.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "launcher/config.pb.h"
#include "launcher/trainer.h"
#include "parallel/distributed.h"

namespace aoetron::launch {

// Removes every "--set X", "--set=X", "-set X", "-set=X" from argv and returns the X in order
// (absl's list flags would split a value at its commas). `error` is set when a --set has no
// value. Everything after "--" is kept as is.
std::vector<std::string> ExtractSetFlags(int* argc, char** argv, std::string* error);

// The start of main() of aoetron-train, -eval and -generate: --help lists the flags defined in
// the program's own source file `main_file` (e.g. "train_main"), the --set overrides are taken
// out of argv (ExtractSetFlags), absl parses the rest, and a positional argument is an error
// whose message ends with `positional_hint`. Returns the overrides in order.
absl::StatusOr<std::vector<std::string>> ParseProgramCommandLine(
    int* argc, char** argv, const std::string& main_file, const char* usage,
    const std::string& positional_hint);

// The rank / world size the MPI launcher (or Slurm) announces, read before MPI starts: 0 / 1
// when not launched by one. Only for printing once and validating early; the world communicator
// decides.
int LauncherRank();
int LauncherWorldSize();

// Ranks other than 0 linger before exiting 1, so that rank 0, which alone prints the message,
// exits first (mpirun may drop output of a rank it has not forwarded when another exits first).
void LetRankZeroExitFirst(int rank);

// Before MPI started: rank 0 prints "<program>: <message>"; returns the exit status 1.
int FailBeforeMpi(const std::string& program, const std::string& message);

// After MPI started: one rank prints and returns 1; several end through parallel::AbortAll.
int FailRun(parallel::DistributedContext& context, const std::string& program,
            const absl::Status& status);

// --resume / --checkpoint: "" → ""; "auto" → the newest complete checkpoint under
// `checkpoint_dir` (none: "" with a note, a fresh start); a step directory (has COMMITTED) →
// itself; another directory → its newest complete checkpoint. Collective (rank 0 looks, all
// agree).
absl::StatusOr<std::string> ResolveCheckpoint(parallel::DistributedContext& context,
                                              const std::string& program,
                                              const std::string& checkpoint_dir,
                                              const std::string& flag);

// The config of a program that reads a checkpoint without training it (aoetron-eval,
// aoetron-generate): the checkpoint's own config text (or the file `config_path` when given),
// laid out for one process (tp = ep = 1, ZeRO-1 off) with checkpoint.dir empty (nothing is
// saved) and train.eval_interval ≥ 1, then `overrides` (--set) in order.
absl::StatusOr<config::TrainConfig> ConfigForCheckpoint(const std::string& step_directory,
                                                        const std::string& config_path,
                                                        const std::vector<std::string>& overrides);

// What a program that reads a checkpoint gets to work with (RunOnCheckpoint).
struct CheckpointJob {
  parallel::DistributedContext* context = nullptr;
  const config::TrainConfig* config = nullptr;  // ConfigForCheckpoint's
  std::string step_directory;                   // the resolved checkpoint step
  TrainerParallelism* parallelism = nullptr;
};

// The main() of aoetron-eval and aoetron-generate after their command line is parsed: starts MPI,
// resolves `checkpoint` (a step directory or a root: its newest complete step), builds
// ConfigForCheckpoint(step, config_path, overrides), and runs `work` on the config's process
// groups; then finalizes MPI. Errors every rank finds alike (no such checkpoint, a bad --set)
// are printed once by rank 0. Returns the exit status.
int RunOnCheckpoint(int* argc, char*** argv, const std::string& program,
                    const std::string& checkpoint, const std::string& config_path,
                    const std::vector<std::string>& overrides,
                    const std::function<int(CheckpointJob&)>& work);

// Validates `config` for the job (layout, device), makes the rank's GPU current, builds the
// process grid and groups, and calls `work` with the parallelism the trainer takes. Returns
// work's exit status, or 1 after a layout error (printed once by rank 0) or a failure to build
// the groups (FailRun).
int RunWithProcessGroups(parallel::DistributedContext& context, const config::TrainConfig& config,
                         const std::string& program,
                         const std::function<int(TrainerParallelism&)>& work);

}  // namespace aoetron::launch
