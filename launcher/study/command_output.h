// Runs a command (no shell) and collects what it prints: for the batch system's client programs
// (sbatch, scontrol, scancel), whose answers the study reads.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace aoetron::study {

struct CommandOutput {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out;     // stdout
  std::string err;     // stderr
};

// argv[0] is looked up on PATH; `environment` entries ("NAME=value") are added to this process's
// environment for the child. Errors: the command could not be started (fork, exec: "cannot run
// sbatch: No such file or directory"). A non-zero exit is not an error: see exit_code.
absl::StatusOr<CommandOutput> RunCommand(const std::vector<std::string>& argv,
                                         const std::vector<std::string>& environment = {});

}  // namespace aoetron::study
