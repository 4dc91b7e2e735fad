// Reading an aoetron-train metrics file (JSON lines, launcher/step_metrics.h) back: whole, for
// the report, or as it grows, for the study's progress line.
//
// A resumed run appends, so a file may hold a step twice (the run logged it, was killed before
// its next checkpoint, and the resumed run logged it again): the last line for a step wins, as
// docs/training.md says. A partial last line (the trainer is writing it) is left for later.
//
// Thread safety: MetricsTail is not thread-safe; ReadMetricsFile is a pure function of the file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace aoetron::study {

// The fields of one logged step the study uses.
struct MetricsRecord {
  int64_t step = 0;
  double loss = 0.0;
  std::optional<double> val_loss;  // only on steps that evaluated
  int64_t tokens = 0;              // tokens trained so far, this step included
  double tokens_per_s = 0.0;
  double model_tflops = 0.0;
  double step_ms = 0.0;
  std::vector<double> load_max;  // per layer; empty for a dense model
  std::vector<double> ent_load;  // per layer
  double peak_rss_bytes = 0;     // the trainer's: max over ranks so far; 0 when not logged
};

// Parses one JSON line; an error names what is wrong.
absl::StatusOr<MetricsRecord> ParseMetricsLine(const std::string& line);

// Every step of the file, ordered by step, the last line of each step winning. A missing file is
// NotFound; a malformed complete line is an error naming the file and line.
absl::StatusOr<std::vector<MetricsRecord>> ReadMetricsFile(const std::string& path);

// Follows a metrics file as it grows.
class MetricsTail {
 public:
  explicit MetricsTail(std::string path) : path_(std::move(path)) {}
  // The complete lines added since the last call, parsed; malformed lines are skipped (the file
  // is being written by another process; the report reads it again, strictly).
  std::vector<MetricsRecord> ReadNew();

 private:
  std::string path_;
  int64_t offset_ = 0;
};

}  // namespace aoetron::study
