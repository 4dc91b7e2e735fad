#include "launcher/study/study_runner.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "launcher/config_loader.h"
#include "launcher/study/metrics_reader.h"
#include "launcher/study/run_status.h"

namespace aoetron::study {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The end of what a job printed since `offset`, without its JSON progress lines: the trainer's
// error message, or mpirun's.
std::string ErrorFromLog(const std::string& log_path, int64_t offset) {
  std::ifstream in(log_path, std::ios::binary);
  if (!in) return "";
  in.seekg(offset);
  std::ostringstream text;
  text << in.rdbuf();
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(text.str(), '\n')) {
    if (line.empty() || line.front() == '{' || absl::StartsWith(line, "### aoetron-study")) {
      continue;
    }
    lines.emplace_back(line);
  }
  constexpr size_t kKeep = 12;
  if (lines.size() > kKeep) lines.erase(lines.begin(), lines.end() - kKeep);
  return absl::StrJoin(lines, "\n");
}

int64_t FileSize(const std::string& path) {
  std::error_code error;
  const auto size = fs::file_size(path, error);
  return error ? 0 : static_cast<int64_t>(size);
}

// What the progress line shows of the running job.
struct LiveRun {
  int64_t step = 0;
  double loss = 0.0;
  std::optional<double> val_loss;
  double tokens_per_s = 0.0;
  double model_flops_per_s = 0.0;
  double step_ms = 0.0;
};

}  // namespace

config::TrainConfig RunConfig(const PlannedRun& run, const std::string& run_dir) {
  config::TrainConfig config = run.config;
  const fs::path dir = fs::absolute(run_dir);
  config.mutable_checkpoint()->set_dir((dir / "checkpoints").string());
  config.mutable_logging()->set_metrics_file((dir / "metrics.jsonl").string());
  config.mutable_logging()->set_progress(config::LoggingSection::never);
  return config;
}

absl::StatusOr<StudyOutcome> RunStudy(const StudyPlan& plan, RunLauncher& launcher,
                                      const RunnerOptions& options) {
  std::ostream& out = *options.progress;
  std::error_code error;
  fs::create_directories(options.out_dir, error);
  if (error) {
    return absl::InternalError(
        absl::StrFormat("cannot create %s: %s", options.out_dir, error.message()));
  }
  StudyOutcome outcome;
  const int total = static_cast<int>(plan.runs.size());
  // Model FLOP/s for the study's time left: the spec's, else the latest measured.
  double rate = plan.spec.execution().flops_per_second();

  for (int index = 0; index < total; ++index) {
    const PlannedRun& run = plan.runs[index];
    const std::string tag = absl::StrFormat("[%d/%d] %s", index + 1, total, run.name);
    const std::string dir = options.out_dir + "/" + run.name;
    fs::create_directories(dir, error);
    if (error) {
      return absl::InternalError(absl::StrFormat("cannot create %s: %s", dir, error.message()));
    }
    absl::StatusOr<RunStatus> read = ReadRunStatus(dir);
    if (!read.ok()) return read.status();
    RunStatus status = *std::move(read);
    if (status.state() == RunStatus::finished) {
      out << tag << ": finished earlier, skipped\n" << std::flush;
      ++outcome.finished;
      continue;
    }
    if (status.state() == RunStatus::failed && !plan.spec.execution().retry_failed()) {
      const std::string first_line = status.error().substr(0, status.error().find('\n'));
      out << tag << ": failed earlier (exit " << status.exit_code() << ": " << first_line
          << "), skipped; set execution.retry_failed to run it again\n"
          << std::flush;
      ++outcome.failed;
      continue;
    }

    // Launch (again): the config, then the status, then the job.
    const config::TrainConfig config = RunConfig(run, dir);
    {
      std::ofstream config_file(dir + "/config.textproto", std::ios::trunc);
      config_file << "# Written by aoetron-study for run " << run.name << " of study " << plan.name
                  << ".\n"
                  << ResolvedConfigText(config);
      if (!config_file) return absl::InternalError("cannot write " + dir + "/config.textproto");
    }
    const bool resuming = status.attempts() > 0;
    status.set_state(RunStatus::running);
    status.set_attempts(status.attempts() + 1);
    status.clear_error();
    if (absl::Status written = WriteRunStatus(dir, status); !written.ok()) return written;

    LaunchRequest request;
    request.name = run.name;
    request.ranks = plan.spec.execution().ranks();
    request.trainer_args = {"--config", fs::absolute(dir + "/config.textproto").string(),
                            "--resume", "auto"};
    request.log_path = dir + "/train.log";
    const int64_t log_offset = FileSize(request.log_path);
    out << tag << ": " << (resuming ? "resuming (--resume auto)" : "starting") << ", attempt "
        << status.attempts() << ": " << launcher.Describe(request) << "\n"
        << std::flush;
    absl::StatusOr<std::unique_ptr<LaunchedJob>> job = launcher.Launch(request);
    if (!job.ok()) {
      status.set_state(RunStatus::failed);
      status.set_error(std::string(job.status().message()));
      if (absl::Status written = WriteRunStatus(dir, status); !written.ok()) return written;
      out << tag << ": could not start: " << job.status().message() << "\n" << std::flush;
      ++outcome.failed;
      continue;
    }

    // Follow the metrics file until the job ends.
    MetricsTail tail(config.logging().metrics_file());
    // Skip what earlier launches wrote: only this launch's lines drive the progress line.
    tail.ReadNew();
    LiveRun live;
    bool stop_sent = false;
    Clock::time_point last_print = Clock::now();
    int64_t printed_step = -1;
    std::optional<JobExit> exit;
    while (!(exit = (*job)->Poll()).has_value()) {
      if (options.stop_requested != nullptr && *options.stop_requested && !stop_sent) {
        out << (options.terminal ? "\n" : "") << tag
            << ": stop requested; asking the job to save a checkpoint and stop\n"
            << std::flush;
        (*job)->RequestStop();
        stop_sent = true;
      }
      for (const MetricsRecord& record : tail.ReadNew()) {
        live.step = record.step;
        live.loss = record.loss;
        if (record.val_loss.has_value()) live.val_loss = record.val_loss;
        if (record.step > 1 || live.tokens_per_s == 0) {
          live.tokens_per_s = record.tokens_per_s;
          live.model_flops_per_s = record.model_tflops * 1e12;
          live.step_ms = record.step_ms;
        }
      }
      if (live.model_flops_per_s > 0 && plan.spec.execution().flops_per_second() <= 0) {
        rate = live.model_flops_per_s;
      }
      const bool due =
          options.terminal || std::chrono::duration<double>(Clock::now() - last_print).count() >=
                                  options.quiet_progress_seconds;
      if (live.step > 0 && live.step != printed_step && due) {
        const double run_left = static_cast<double>(run.steps - live.step) * live.step_ms / 1e3;
        double study_left = run_left;
        for (int later = index + 1; later < total && rate > 0; ++later) {
          study_left += plan.runs[later].training_flops / rate;
        }
        std::string line =
            absl::StrFormat("%s: step %d/%d | loss %.4f", tag, live.step, run.steps, live.loss);
        if (live.val_loss.has_value()) absl::StrAppendFormat(&line, " | val %.4f", *live.val_loss);
        absl::StrAppendFormat(&line, " | %s tok/s | run %s left", HumanCount(live.tokens_per_s),
                              HumanDuration(run_left));
        if (index + 1 < total) {
          absl::StrAppendFormat(&line, ", study ~%s left",
                                rate > 0 ? HumanDuration(study_left) : "?");
        }
        if (options.terminal) {
          out << "\r\033[K" << line << std::flush;
        } else {
          out << line << "\n" << std::flush;
        }
        printed_step = live.step;
        last_print = Clock::now();
      }
      std::this_thread::sleep_for(std::chrono::duration<double>(options.poll_seconds));
    }
    if (options.terminal && printed_step >= 0) out << "\n";

    // Record how it ended.
    status.set_wall_seconds(status.wall_seconds() + exit->wall_seconds);
    status.set_peak_rss_kib(std::max<int64_t>(status.peak_rss_kib(), exit->peak_rss_kib));
    status.set_exit_code(exit->exit_code);
    int64_t last_step = 0;
    if (absl::StatusOr<std::vector<MetricsRecord>> records =
            ReadMetricsFile(config.logging().metrics_file());
        records.ok() && !records->empty()) {
      last_step = records->back().step;
    }
    if (exit->exit_code == 0 && last_step >= run.steps) {
      status.set_state(RunStatus::finished);
      ++outcome.finished;
      out << tag << ": finished (" << HumanDuration(exit->wall_seconds) << ")\n";
    } else if (exit->exit_code == 0 || stop_sent) {
      status.set_state(RunStatus::running);  // unfinished: the next `run` resumes it
      status.set_error(absl::StrFormat("stopped after step %d of %d", last_step, run.steps));
      ++outcome.unfinished;
      out << tag << ": stopped after step " << last_step << " of " << run.steps
          << "; run the study again to resume it\n";
    } else {
      status.set_state(RunStatus::failed);
      std::string message = ErrorFromLog(request.log_path, log_offset);
      if (exit->signal != 0) {
        message =
            absl::StrCat("killed by signal ", exit->signal, message.empty() ? "" : "\n", message);
      }
      status.set_error(message.empty() ? "no output" : message);
      ++outcome.failed;
      out << tag << ": FAILED (exit " << exit->exit_code << ", log " << request.log_path
          << "):\n    " << absl::StrJoin(absl::StrSplit(status.error(), '\n'), "\n    ") << "\n";
    }
    out << std::flush;
    if (absl::Status written = WriteRunStatus(dir, status); !written.ok()) return written;
    if (stop_sent) {
      outcome.interrupted = true;
      return outcome;
    }
  }
  return outcome;
}

}  // namespace aoetron::study
