// aoetron-study: scaling studies across expert counts (docs/scaling_study.md).
//
//   aoetron-study plan SPEC [--out DIR]     the table of runs, checked, before anything runs
//   aoetron-study run SPEC [--out DIR]      every run, one after another (restart: resumes)
//   aoetron-study report SPEC [--out DIR]   CSV + Markdown table, power-law fits, PNG plots
//
// Exit status: 0 on success; 1 for a bad command line or spec (the message names the field and
// the point), a study that could not write its files, or (run) a study with failed runs or one
// stopped by SIGINT/SIGTERM (run it again to resume).
#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "launcher/study/gnuplot_plots.h"
#include "launcher/study/run_launcher.h"
#include "launcher/study/slurm_launcher.h"
#include "launcher/study/study_plan.h"
#include "launcher/study/study_report.h"
#include "launcher/study/study_runner.h"
#include "launcher/study/study_spec.h"

ABSL_FLAG(std::string, out, "",
          "The study's output directory (one directory per run, and report/). Default: the "
          "spec's out_dir, else <spec file's directory>/<spec name>.");

namespace {

namespace fs = std::filesystem;
using namespace aoetron::study;

volatile std::sig_atomic_t g_stop_requested = 0;
void RequestStop(int) { g_stop_requested = 1; }

constexpr char kUsage[] =
    "plans, runs and reports scaling studies across expert counts.\n"
    "\n"
    "  aoetron-study plan SPEC [--out DIR]     print the runs (shape, parameters, FLOPs, time)\n"
    "  aoetron-study run SPEC [--out DIR]      run them under mpirun (or as Slurm jobs), one\n"
    "                                          after another; run again after an interruption\n"
    "                                          to resume\n"
    "  aoetron-study report SPEC [--out DIR]   report.csv, report.md and plots in DIR/report\n"
    "\n"
    "SPEC is a StudySpec in protobuf text format (launcher/study/study.proto); the format, the\n"
    "matching rule and the report: docs/scaling_study.md.";

// The trainer beside this program (build/bin/), else the one on PATH.
std::string DefaultTrainBinary() {
  std::error_code error;
  const fs::path self = fs::read_symlink("/proc/self/exe", error);
  if (!error) {
    const fs::path beside = self.parent_path() / "aoetron-train";
    if (fs::exists(beside)) return beside.string();
  }
  return "aoetron-train";
}

// execution.launcher: mpirun here, or Slurm batch jobs through the job script.
absl::StatusOr<std::unique_ptr<RunLauncher>> MakeLauncher(const StudySpec& spec,
                                                          const std::string& spec_path) {
  const Execution& execution = spec.execution();
  const std::string train =
      execution.has_train_binary() ? execution.train_binary() : DefaultTrainBinary();
  if (execution.launcher() != "slurm") {
    return std::make_unique<LocalMpiLauncher>(
        execution.mpirun(),
        std::vector<std::string>(execution.mpirun_args().begin(), execution.mpirun_args().end()),
        train);
  }
  SlurmLauncherOptions options;
  options.sbatch_args.assign(execution.sbatch_args().begin(), execution.sbatch_args().end());
  options.job_script = execution.has_job_script()
                           ? (fs::absolute(spec_path).parent_path() / execution.job_script())
                                 .lexically_normal()
                                 .string()
                           : std::string(AOETRON_SOURCE_DIR) + "/scripts/slurm/aoetron.sbatch";
  if (!fs::exists(options.job_script)) {
    return absl::NotFoundError(
        absl::StrCat("execution.job_script: no job script at ", options.job_script));
  }
  // The job runs elsewhere: give it an absolute trainer path when there is one here.
  options.train_binary = fs::exists(train) ? fs::absolute(train).string() : train;
  return std::make_unique<SlurmLauncher>(std::move(options));
}

int Fail(const std::string& message) {
  std::cerr << "aoetron-study: " << message << std::endl;
  return 1;
}

int Report(const StudyPlan& plan, const std::string& out_dir) {
  absl::StatusOr<StudyReport> report = BuildStudyReport(plan, out_dir);
  if (!report.ok()) return Fail(std::string(report.status().message()));
  const std::string report_dir = out_dir + "/report";
  std::error_code error;
  fs::create_directories(report_dir, error);
  if (error) return Fail("cannot create " + report_dir + ": " + error.message());
  DrawStudyPlots(report_dir, &*report);
  std::ofstream(report_dir + "/report.csv") << ReportCsv(*report);
  const std::string markdown = ReportMarkdown(*report);
  std::ofstream(report_dir + "/report.md") << markdown;
  std::cout << markdown << "\nwritten: " << report_dir << "/report.csv, report.md";
  for (const std::string& plot : report->plots) std::cout << ", " << plot;
  std::cout << std::endl;
  if (!report->plots_note.empty()) std::cerr << "aoetron-study: " << report->plots_note << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view path) {
    return absl::StrContains(path, "study_main");
  };
  absl::SetFlagsUsageConfig(usage_config);
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() != 3) {
    return Fail(absl::StrCat("usage: aoetron-study plan|run|report SPEC [--out DIR]\n\n", kUsage));
  }
  const std::string command = positional[1], spec_path = positional[2];
  if (command != "plan" && command != "run" && command != "report") {
    return Fail(absl::StrCat("unknown command \"", command, "\"; commands: plan, run, report"));
  }
  absl::StatusOr<StudySpec> spec = ReadStudySpecFile(spec_path);
  if (!spec.ok()) return Fail(std::string(spec.status().message()));
  absl::StatusOr<StudyPlan> plan = MakeStudyPlan(*spec, spec_path);
  if (!plan.ok()) return Fail(std::string(plan.status().message()));
  const std::string out_dir = absl::GetFlag(FLAGS_out).empty()
                                  ? plan->out_dir
                                  : fs::absolute(absl::GetFlag(FLAGS_out)).string();
  plan->out_dir = out_dir;

  if (command == "report") return Report(*plan, out_dir);
  const std::string table = FormatPlanTable(*plan, ChooseFlopRate(*plan, out_dir));
  std::cout << table << std::flush;
  if (command == "plan") return 0;

  std::error_code error;
  fs::create_directories(out_dir, error);
  if (error) return Fail("cannot create " + out_dir + ": " + error.message());
  std::ofstream(out_dir + "/plan.txt") << table;
  absl::StatusOr<std::unique_ptr<RunLauncher>> launcher = MakeLauncher(*spec, spec_path);
  if (!launcher.ok()) return Fail(std::string(launcher.status().message()));
  struct sigaction action = {};
  action.sa_handler = RequestStop;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  RunnerOptions options;
  options.out_dir = out_dir;
  options.progress = &std::cout;
  options.terminal = isatty(STDOUT_FILENO) != 0;
  options.stop_requested = &g_stop_requested;
  std::cout << "\n";
  absl::StatusOr<StudyOutcome> outcome = RunStudy(*plan, **launcher, options);
  if (!outcome.ok()) return Fail(std::string(outcome.status().message()));
  std::cout << "study " << plan->name << ": " << outcome->finished << " finished, "
            << outcome->failed << " failed, " << outcome->unfinished << " unfinished"
            << (outcome->interrupted ? " (interrupted: run again to resume)" : "") << "; report: "
            << "aoetron-study report " << spec_path
            << (absl::GetFlag(FLAGS_out).empty() ? "" : " --out " + out_dir) << std::endl;
  return outcome->failed > 0 || outcome->interrupted ? 1 : 0;
}
