#include "launcher/metrics_logger.h"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_format.h"

namespace aoetron {

std::string ResolveMetricsFilePath(const config::TrainConfig& config) {
  if (!config.logging().metrics_file().empty()) return config.logging().metrics_file();
  if (!config.checkpoint().dir().empty()) {
    return (std::filesystem::path(config.checkpoint().dir()) / "metrics.jsonl").string();
  }
  return "metrics.jsonl";
}

bool WantsHumanProgress(config::LoggingSection::Progress progress, bool out_is_terminal) {
  switch (progress) {
    case config::LoggingSection::always:
      return true;
    case config::LoggingSection::never:
      return false;
    case config::LoggingSection::auto_:
      break;
  }
  return out_is_terminal;
}

absl::StatusOr<std::unique_ptr<MetricsLogger>> MetricsLogger::Open(const std::string& metrics_path,
                                                                   std::ostream* out,
                                                                   bool human_progress) {
  const std::filesystem::path parent = std::filesystem::path(metrics_path).parent_path();
  if (!parent.empty()) {
    std::error_code error;
    std::filesystem::create_directories(parent, error);
    if (error) {
      return absl::InvalidArgumentError(
          absl::StrFormat("metrics file \"%s\": cannot create directory \"%s\": %s", metrics_path,
                          parent.string(), error.message()));
    }
  }
  std::unique_ptr<MetricsLogger> logger(new MetricsLogger(metrics_path, out, human_progress));
  logger->file_.open(metrics_path, std::ios::app);
  if (!logger->file_) {
    return absl::InvalidArgumentError(
        absl::StrFormat("metrics file \"%s\" (logging.metrics_file): cannot open for appending: %s",
                        metrics_path, std::strerror(errno)));
  }
  return logger;
}

absl::Status MetricsLogger::Log(const StepMetrics& metrics) {
  const std::string json = StepMetricsJson(metrics);
  file_ << json << '\n';
  file_.flush();
  if (!file_) {
    return absl::DataLossError(absl::StrFormat("metrics file \"%s\": write failed at step %d",
                                               metrics_path_, metrics.step));
  }
  *out_ << (human_progress_ ? StepMetricsProgressLine(metrics) : json) << std::endl;
  return absl::OkStatus();
}

}  // namespace aoetron
