#include "launcher/study/slurm_launcher.h"

#include <chrono>
#include <fstream>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "launcher/study/command_output.h"

namespace aoetron::study {
namespace {

// The value of "Field=" in a one-line scontrol record ("" when absent).
std::string ScontrolField(const std::string& line, const std::string& field) {
  for (absl::string_view token : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
    if (absl::ConsumePrefix(&token, field) && absl::ConsumePrefix(&token, "=")) {
      return std::string(token);
    }
  }
  return "";
}

class SlurmJob : public LaunchedJob {
 public:
  SlurmJob(std::string id, const SlurmLauncherOptions& options)
      : id_(std::move(id)), options_(options), start_(std::chrono::steady_clock::now()) {}

  std::optional<JobExit> Poll() override {
    if (exit_.has_value()) return exit_;
    const auto now = std::chrono::steady_clock::now();
    if (last_poll_.has_value() &&
        std::chrono::duration<double>(now - *last_poll_).count() < options_.poll_seconds) {
      return std::nullopt;
    }
    last_poll_ = now;
    absl::StatusOr<CommandOutput> shown = ShowJob();
    if (!shown.ok()) return std::nullopt;  // the client is missing for a moment: ask again later
    std::optional<JobExit> ended;
    if (shown->exit_code == 0) {
      ended = JobExitFromScontrol(shown->out);
    } else if (shown->err.find("Invalid job id") != std::string::npos) {
      ended = JobExit{};  // purged: it ended long ago, how is unknown
    }
    if (!ended.has_value()) return std::nullopt;
    ended->wall_seconds = std::chrono::duration<double>(now - start_).count();
    exit_ = ended;
    return exit_;
  }

  void RequestStop() override {
    if (exit_.has_value()) return;
    absl::StatusOr<CommandOutput> shown = ShowJob();
    const bool pending = shown.ok() && ScontrolField(shown->out, "JobState") == "PENDING";
    if (pending) {
      (void)RunCommand({"scancel", id_});
    } else {
      // To the job script, which passes SIGUSR1 to the ranks through srun: a signal Slurm sends
      // the tasks itself (scancel --signal=TERM) cancels the step, and twice a rank was seen to
      // abort on a corrupted heap at that moment (issue 14's closing note).
      (void)RunCommand({"scancel", "--batch", "--signal=USR2", id_});
    }
  }

 private:
  // The job's record on one line: "JobId=12 JobName=... JobState=RUNNING ...".
  absl::StatusOr<CommandOutput> ShowJob() const {
    return RunCommand({"scontrol", "show", "job", "-o", id_});
  }

  std::string id_;
  SlurmLauncherOptions options_;
  std::chrono::steady_clock::time_point start_;
  std::optional<std::chrono::steady_clock::time_point> last_poll_;
  std::optional<JobExit> exit_;
};

}  // namespace

std::optional<JobExit> JobExitFromScontrol(const std::string& line) {
  const std::string state = ScontrolField(line, "JobState");
  // Slurm's job states that have not ended (squeue(1), "JOB STATE CODES").
  static const char* const kLive[] = {"PENDING",     "RUNNING",       "SUSPENDED",   "COMPLETING",
                                      "CONFIGURING", "REQUEUED",      "REQUEUE_FED", "REQUEUE_HOLD",
                                      "RESIZING",    "RESV_DEL_HOLD", "SIGNALING",   "STAGE_OUT",
                                      "STOPPED"};
  for (const char* live : kLive) {
    if (state == live) return std::nullopt;
  }
  if (state.empty()) return std::nullopt;  // not a job record: ask again
  JobExit exit;
  // ExitCode=<status>:<signal> of the batch script.
  const std::vector<std::string> code = absl::StrSplit(ScontrolField(line, "ExitCode"), ':');
  int status = 0, signal = 0;
  if (code.size() == 2 && absl::SimpleAtoi(code[0], &status) &&
      absl::SimpleAtoi(code[1], &signal)) {
    exit.exit_code = status;
    exit.signal = signal;
  }
  if (signal != 0) exit.exit_code = -1;
  // Cancelled, timed out, failed nodes: not a success even where the script's status says 0.
  if (state != "COMPLETED" && exit.exit_code == 0) exit.exit_code = -1;
  return exit;
}

SlurmLauncher::SlurmLauncher(SlurmLauncherOptions options) : options_(std::move(options)) {}

std::vector<std::string> SlurmLauncher::SbatchCommand(const LaunchRequest& request) const {
  std::vector<std::string> argv = {"sbatch",
                                   "--parsable",
                                   absl::StrCat("--job-name=", request.name),
                                   absl::StrCat("--ntasks=", request.ranks),
                                   absl::StrCat("--output=", request.log_path),
                                   "--open-mode=append"};
  argv.insert(argv.end(), options_.sbatch_args.begin(), options_.sbatch_args.end());
  argv.push_back(options_.job_script);
  argv.insert(argv.end(), request.trainer_args.begin(), request.trainer_args.end());
  return argv;
}

std::string SlurmLauncher::Describe(const LaunchRequest& request) const {
  return absl::StrCat("AOETRON_TRAIN=", options_.train_binary, " ",
                      absl::StrJoin(SbatchCommand(request), " "));
}

absl::StatusOr<std::unique_ptr<LaunchedJob>> SlurmLauncher::Launch(const LaunchRequest& request) {
  std::ofstream(request.log_path, std::ios::app)
      << "### aoetron-study: " << Describe(request) << "\n";
  absl::StatusOr<CommandOutput> submitted =
      RunCommand(SbatchCommand(request), {absl::StrCat("AOETRON_TRAIN=", options_.train_binary)});
  if (!submitted.ok()) return submitted.status();
  // --parsable: "<job id>" or "<job id>;<cluster>".
  const std::string id(
      absl::StripAsciiWhitespace(std::vector<std::string>(absl::StrSplit(submitted->out, ';'))[0]));
  int64_t number = 0;
  if (submitted->exit_code != 0 || !absl::SimpleAtoi(id, &number)) {
    return absl::UnavailableError(absl::StrFormat(
        "sbatch exited %d for run %s: %s", submitted->exit_code, request.name,
        absl::StripAsciiWhitespace(submitted->err.empty() ? submitted->out : submitted->err)));
  }
  return std::unique_ptr<LaunchedJob>(new SlurmJob(id, options_));
}

}  // namespace aoetron::study
