#include "launcher/study/run_launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace aoetron::study {
namespace {

class LocalJob : public LaunchedJob {
 public:
  explicit LocalJob(pid_t pid) : pid_(pid), start_(std::chrono::steady_clock::now()) {}

  std::optional<JobExit> Poll() override {
    if (exit_.has_value()) return exit_;
    int status = 0;
    struct rusage usage = {};
    const pid_t done = wait4(pid_, &status, WNOHANG, &usage);
    if (done == 0) return std::nullopt;
    JobExit job_exit;
    job_exit.wall_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (done < 0) {  // not our child any more (cannot happen unless someone reaped it)
      job_exit.exit_code = -1;
    } else if (WIFEXITED(status)) {
      job_exit.exit_code = WEXITSTATUS(status);
      job_exit.peak_rss_kib = usage.ru_maxrss;  // Linux: KiB, max over waited-for descendants
    } else if (WIFSIGNALED(status)) {
      job_exit.signal = WTERMSIG(status);
      job_exit.peak_rss_kib = usage.ru_maxrss;
    }
    exit_ = job_exit;
    return exit_;
  }

  void RequestStop() override {
    if (!exit_.has_value()) kill(pid_, SIGTERM);
  }

 private:
  pid_t pid_;
  std::chrono::steady_clock::time_point start_;
  std::optional<JobExit> exit_;
};

}  // namespace

LocalMpiLauncher::LocalMpiLauncher(std::string mpirun, std::vector<std::string> mpirun_args,
                                   std::string train_binary)
    : mpirun_(std::move(mpirun)),
      mpirun_args_(std::move(mpirun_args)),
      train_binary_(std::move(train_binary)) {}

std::vector<std::string> LocalMpiLauncher::Command(const LaunchRequest& request) const {
  std::vector<std::string> argv;
  if (!mpirun_.empty()) {
    argv.push_back(mpirun_);
    argv.insert(argv.end(), mpirun_args_.begin(), mpirun_args_.end());
    argv.push_back("-np");
    argv.push_back(absl::StrCat(request.ranks));
  }
  argv.push_back(train_binary_);
  argv.insert(argv.end(), request.trainer_args.begin(), request.trainer_args.end());
  return argv;
}

std::string LocalMpiLauncher::Describe(const LaunchRequest& request) const {
  return absl::StrJoin(Command(request), " ");
}

absl::StatusOr<std::unique_ptr<LaunchedJob>> LocalMpiLauncher::Launch(
    const LaunchRequest& request) {
  if (mpirun_.empty() && request.ranks != 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "execution.ranks (%d) needs execution.mpirun (it is empty)", request.ranks));
  }
  const std::vector<std::string> command = Command(request);
  const int log = open(request.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) {
    return absl::InternalError(
        absl::StrFormat("cannot open %s: %s", request.log_path, std::strerror(errno)));
  }
  const std::string header = absl::StrCat("### aoetron-study: ", absl::StrJoin(command, " "), "\n");
  (void)!write(log, header.data(), header.size());
  // Everything the child needs is made before fork: after it, only async-signal-safe calls.
  const std::string exec_failed = absl::StrFormat("aoetron-study: cannot run %s: ", command[0]);
  std::vector<char*> argv;
  for (const std::string& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(log);
    return absl::InternalError(absl::StrFormat("fork: %s", std::strerror(errno)));
  }
  if (pid == 0) {
    const int null_in = open("/dev/null", O_RDONLY);
    if (null_in >= 0) dup2(null_in, 0);
    dup2(log, 1);
    dup2(log, 2);
    execvp(argv[0], argv.data());
    const char* reason = std::strerror(errno);
    (void)!write(2, exec_failed.data(), exec_failed.size());
    (void)!write(2, reason, std::strlen(reason));
    (void)!write(2, "\n", 1);
    _exit(127);
  }
  close(log);
  return std::unique_ptr<LaunchedJob>(new LocalJob(pid));
}

}  // namespace aoetron::study
