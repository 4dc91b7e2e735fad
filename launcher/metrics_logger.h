// MetricsLogger: where logged steps go.
//
// Every logged step becomes one JSON line appended to the metrics file (flushed at once, so a
// crashed run keeps what it logged) and one line on `out`: a human progress line or the same
// JSON, as logging.progress and whether `out` is a terminal decide. Not thread-safe.
#pragma once

#include <fstream>
#include <memory>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "launcher/config.pb.h"
#include "launcher/step_metrics.h"

namespace aoetron {

// The metrics file a config resolves to: logging.metrics_file if set; else
// <checkpoint.dir>/metrics.jsonl if checkpoint.dir is set; else "metrics.jsonl" (relative to
// the working directory).
std::string ResolveMetricsFilePath(const config::TrainConfig& config);

// Whether stdout gets human lines (true) or JSON lines (false).
bool WantsHumanProgress(config::LoggingSection::Progress progress, bool out_is_terminal);

class MetricsLogger {
 public:
  // Opens `metrics_path` for appending, creating its parent directory if needed; the error
  // names the path. `out` must outlive the logger.
  static absl::StatusOr<std::unique_ptr<MetricsLogger>> Open(const std::string& metrics_path,
                                                             std::ostream* out,
                                                             bool human_progress);

  // Writes the step to the file and to `out`. An error means the file could not be written.
  absl::Status Log(const StepMetrics& metrics);

  const std::string& metrics_path() const { return metrics_path_; }

 private:
  MetricsLogger(std::string metrics_path, std::ostream* out, bool human_progress)
      : metrics_path_(std::move(metrics_path)), out_(out), human_progress_(human_progress) {}

  std::string metrics_path_;
  std::ofstream file_;
  std::ostream* out_;
  bool human_progress_;
};

}  // namespace aoetron
