// The status file of one study run, <run dir>/status.textproto (RunStatus in study.proto): what
// lets a restarted study skip finished runs, resume unfinished ones and report failed ones.
//
// Written atomically (a temporary file renamed over the old one), so a study killed at any moment
// leaves the old status or the new one, never a torn file.
//
// Thread safety: functions of the file system; one writer per run directory.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "launcher/study/study.pb.h"

namespace aoetron::study {

inline constexpr char kRunStatusFile[] = "status.textproto";

// The status in `run_dir`; a run directory without one is pending (attempts 0).
absl::StatusOr<RunStatus> ReadRunStatus(const std::string& run_dir);

// Stamps `updated` with the current UTC time and writes the file.
absl::Status WriteRunStatus(const std::string& run_dir, RunStatus status);

std::string RunStateName(RunStatus::State state);  // "pending", "running", ...

}  // namespace aoetron::study
