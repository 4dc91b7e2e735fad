// aoetron-study as a user runs it: a tiny study (three points on synthetic data) planned, run,
// SIGKILLed with its whole process group while its second run trains, restarted and completed;
// then its report, checked against every run's own metrics file. And a study whose first run
// fails: the failure is recorded and the next run still runs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "absl/strings/str_split.h"
#include "json_test_util.h"
#include "launcher/study/gnuplot_plots.h"

namespace aoetron::study {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

struct ProgramRun {
  int exit_code = -1;
  std::string output;
};

ProgramRun RunStudy(const std::string& arguments) {
  const std::string command = std::string(AOETRON_STUDY_BINARY) + " " + arguments + " 2>&1";
  ProgramRun run;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  std::array<char, 4096> buffer;
  size_t read;
  while ((read = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
    run.output.append(buffer.data(), read);
  }
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

std::string Mpirun() {
  const std::string configured = AOETRON_MPIEXEC;
  return configured.empty() ? "mpirun" : configured;
}

// The common head of the test specs: the tiny AoE config, fast settings, one rank.
std::string SpecHead(const std::string& name) {
  return "name: \"" + name + "\"\nbase_config: \"" + AOETRON_SOURCE_DIR +
         "/configs/tiny_aoe.textproto\"\n"
         "overrides: \"schedule.warmup_steps=0\"\n"
         "overrides: \"logging.interval=1\"\n"
         "overrides: \"train.eval_interval=2\"\n"
         "overrides: \"train.eval_steps=2\"\n"
         "overrides: \"parallel.threads=1\"\n"
         "overrides: \"checkpoint.async=false\"\n"
         "execution { ranks: 1 mpirun: \"" +
         Mpirun() + "\" mpirun_args: \"--allow-run-as-root\" mpirun_args: \"--oversubscribe\" }\n";
}

// Whether any live process has `needle` on its command line (the killed study's ranks, which
// Open MPI puts in process groups of their own, notice that mpirun is gone and exit).
bool AnyProcessMentions(const std::string& needle) {
  for (const fs::directory_entry& entry : fs::directory_iterator("/proc")) {
    const std::string pid = entry.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmdline.find(needle) != std::string::npos) return true;
  }
  return false;
}

bool AnyCommittedCheckpoint(const std::string& dir) {
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, error)) {
    if (fs::exists(entry.path() / "COMMITTED")) return true;
  }
  return false;
}

// The metrics file read independently of the study's reader: the last line of each step.
std::map<int64_t, google::protobuf::Struct> MetricsBySteps(const std::string& path) {
  std::map<int64_t, google::protobuf::Struct> steps;
  for (const std::string& line : testing::NonEmptyLines(testing::ReadFileToString(path))) {
    absl::StatusOr<google::protobuf::Struct> json = testing::ParseJsonObject(line);
    EXPECT_TRUE(json.ok()) << json.status();
    if (json.ok()) steps[static_cast<int64_t>(json->fields().at("step").number_value())] = *json;
  }
  return steps;
}

double MeanOf(const google::protobuf::Struct& json, const std::string& key) {
  double sum = 0;
  const auto& values = json.fields().at(key).list_value().values();
  for (const auto& v : values) sum += v.number_value();
  return sum / values.size();
}

void ExpectNear(const std::string& csv_value, double expected, const std::string& what) {
  ASSERT_FALSE(csv_value.empty()) << what;
  EXPECT_NEAR(std::stod(csv_value), expected, 1e-8 * std::max(1.0, std::fabs(expected))) << what;
}

TEST(StudyProgramTest, KilledInTheSecondRunRestartsAndReports) {
  const auto start = Clock::now();
  const std::string dir = testing::MakeTempDir("tiny_study");
  const std::string spec = dir + "/tiny.textproto";
  const std::string out = dir + "/out";
  std::ofstream(spec) << SpecHead("tiny") <<
      // b is long enough to be caught training; a checkpoint every 5 steps to resume from.
      "point { name: \"a\" ffn: \"dense\" overrides: \"train.steps=4\" }\n"
      "point { name: \"b\" ffn: \"moe\" overrides: \"train.steps=300\" "
      "overrides: \"checkpoint.interval=5\" overrides: \"train.eval_interval=100\" }\n"
      "point { name: \"c\" ffn: \"aoe\" overrides: \"train.steps=4\" }\n";

  // plan: the table, nothing run.
  const ProgramRun plan = RunStudy("plan " + spec + " --out " + out);
  ASSERT_EQ(plan.exit_code, 0) << plan.output;
  EXPECT_THAT(plan.output, HasSubstr("3 run(s)"));
  EXPECT_THAT(plan.output, HasSubstr("d_expert=128"));
  EXPECT_FALSE(fs::exists(out));

  // run, in its own process group, SIGKILLed as a whole once b has a checkpoint.
  const pid_t study = fork();
  ASSERT_GE(study, 0);
  if (study == 0) {
    setpgid(0, 0);
    const std::string log = dir + "/first_run.log";
    freopen(log.c_str(), "w", stdout);
    dup2(fileno(stdout), 2);
    execl(AOETRON_STUDY_BINARY, AOETRON_STUDY_BINARY, "run", spec.c_str(), "--out", out.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  setpgid(study, study);
  bool caught = false;
  while (Clock::now() - start < std::chrono::seconds(40)) {
    if (AnyCommittedCheckpoint(out + "/b/checkpoints")) {
      caught = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(-study, SIGKILL);
  int wait_status = 0;
  waitpid(study, &wait_status, 0);
  ASSERT_TRUE(caught) << testing::ReadFileToString(dir + "/first_run.log");
  const auto orphans_deadline = Clock::now() + std::chrono::seconds(20);
  while (AnyProcessMentions(out + "/b/") && Clock::now() < orphans_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(AnyProcessMentions(out + "/b/")) << "the killed study's rank is still running";
  EXPECT_THAT(testing::ReadFileToString(out + "/a/status.textproto"), HasSubstr("finished"));
  EXPECT_THAT(testing::ReadFileToString(out + "/b/status.textproto"), HasSubstr("running"));
  EXPECT_LT(MetricsBySteps(out + "/b/metrics.jsonl").rbegin()->first, 300);
  EXPECT_FALSE(fs::exists(out + "/c"));

  // Restarted: a skipped, b resumed from its checkpoint, c run.
  const ProgramRun second = RunStudy("run " + spec + " --out " + out);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_THAT(second.output, HasSubstr("[1/3] a: finished earlier, skipped"));
  EXPECT_THAT(second.output, HasSubstr("[2/3] b: resuming"));
  EXPECT_THAT(second.output, HasSubstr("3 finished, 0 failed"));
  EXPECT_THAT(testing::ReadFileToString(out + "/b/train.log"), HasSubstr("resumed from step"));
  for (const char* run : {"a", "b", "c"}) {
    EXPECT_THAT(testing::ReadFileToString(out + "/" + run + "/status.textproto"),
                HasSubstr("state: finished"))
        << run;
  }

  // report: every row equals its run's metrics file.
  const ProgramRun report = RunStudy("report " + spec + " --out " + out);
  ASSERT_EQ(report.exit_code, 0) << report.output;
  const std::vector<std::string> lines =
      testing::NonEmptyLines(testing::ReadFileToString(out + "/report/report.csv"));
  ASSERT_EQ(lines.size(), 4u);
  const std::vector<std::string> header = absl::StrSplit(lines[0], ',');
  auto column = [&header](const std::string& name) {
    return static_cast<size_t>(std::find(header.begin(), header.end(), name) - header.begin());
  };
  for (size_t row = 1; row < lines.size(); ++row) {
    const std::vector<std::string> cells = absl::StrSplit(lines[row], ',');
    ASSERT_EQ(cells.size(), header.size()) << lines[row];
    const std::string name = cells[column("name")];
    const auto steps = MetricsBySteps(out + "/" + name + "/metrics.jsonl");
    const google::protobuf::Struct& last = steps.rbegin()->second;
    EXPECT_EQ(cells[column("state")], "finished") << name;
    EXPECT_EQ(std::stoll(cells[column("steps")]), steps.rbegin()->first) << name;
    ExpectNear(cells[column("final_loss")], last.fields().at("loss").number_value(), name);
    ExpectNear(cells[column("tokens")], last.fields().at("tokens").number_value(), name);
    ExpectNear(
        cells[column("training_flops")],
        last.fields().at("tokens").number_value() * std::stod(cells[column("flops_per_token")]),
        name);
    double val_loss = NAN;
    for (const auto& [step, json] : steps) {
      if (json.fields().contains("val_loss"))
        val_loss = json.fields().at("val_loss").number_value();
    }
    ExpectNear(cells[column("val_loss")], val_loss, name);
    if (name == "a") {
      EXPECT_EQ(cells[column("ent_load")], "") << "dense has no expert load";
    } else {
      ExpectNear(cells[column("ent_load")], MeanOf(last, "ent_load"), name);
      const double n = std::stod(cells[column("n_experts")]);
      ExpectNear(cells[column("load_max_over_mean")], MeanOf(last, "load_max") * n, name);
    }
    EXPECT_EQ(cells[column("bits_per_byte")], "") << "synthetic data has no bytes";
  }
  const std::string markdown = testing::ReadFileToString(out + "/report/report.md");
  EXPECT_THAT(markdown, HasSubstr("What these runs can and cannot support"));
  EXPECT_THAT(markdown, HasSubstr("bits_per_byte is empty"));

  if (FindGnuplot().empty()) {
    std::cout << "[  NOTE    ] gnuplot is not installed: plot checks skipped\n";
    EXPECT_THAT(report.output, HasSubstr("gnuplot is not on PATH"));
  } else {
    for (const char* plot :
         {"loss_vs_flops.png", "loss_vs_experts.png", "throughput_vs_experts.png"}) {
      const std::string bytes = testing::ReadFileToString(out + "/report/" + plot);
      ASSERT_GE(bytes.size(), 8u) << plot;
      EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << plot;
    }
  }
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(60));
}

TEST(StudyProgramTest, AFailedRunIsRecordedAndTheRestContinue) {
  const std::string dir = testing::MakeTempDir("failing_study");
  const std::string spec = dir + "/failing.textproto";
  const std::string out = dir + "/out";
  // Tokens 1000 in a model of vocabulary 256: the trainer refuses the file at start.
  {
    std::ofstream tokens(dir + "/bad.bin", std::ios::binary);
    const uint16_t token = 1000;
    for (int i = 0; i < 4096; ++i) tokens.write(reinterpret_cast<const char*>(&token), 2);
  }
  std::ofstream(spec) << SpecHead("failing")
                      << "point { name: \"bad\" ffn: \"moe\" overrides: \"train.steps=2\" "
                         "overrides: \"data.source=token_file\" overrides: \"data.token_file_path="
                      << dir << "/bad.bin\" }\n"
                      << "point { name: \"good\" ffn: \"aoe\" overrides: \"train.steps=2\" }\n";
  ProgramRun run = RunStudy("run " + spec + " --out " + out);
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("[1/2] bad: FAILED"));
  EXPECT_THAT(run.output, HasSubstr("[2/2] good: finished"));
  const std::string status = testing::ReadFileToString(out + "/bad/status.textproto");
  EXPECT_THAT(status, HasSubstr("state: failed"));
  EXPECT_THAT(status, HasSubstr("1000"));  // the trainer's message names the token
  // Run again: the failure is not retried unless asked; the finished run is skipped.
  run = RunStudy("run " + spec + " --out " + out);
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("[1/2] bad: failed earlier"));
  EXPECT_THAT(run.output, HasSubstr("[2/2] good: finished earlier, skipped"));
  const ProgramRun report = RunStudy("report " + spec + " --out " + out);
  ASSERT_EQ(report.exit_code, 0) << report.output;
  EXPECT_THAT(testing::ReadFileToString(out + "/report/report.md"), HasSubstr("failed: "));
}

TEST(StudyProgramTest, BadSpecExitsNamingTheField) {
  const std::string dir = testing::MakeTempDir("bad_spec");
  const std::string spec = dir + "/bad.textproto";
  std::ofstream(spec) << SpecHead("bad") << "axes { ffn: \"moe\" n_expert: 4 }\n";
  ProgramRun run = RunStudy("plan " + spec);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.output, HasSubstr("unknown field \"axes.n_expert\""));
  std::ofstream(spec) << SpecHead("bad")
                      << "axes { ffn: \"aoe\" n_experts: 64 d_low: 64 }\n"
                         "matching { hold: \"active_flops\" reference { ffn: \"dense\" } }\n";
  run = RunStudy("run " + spec);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.output, HasSubstr("point \"aoe-n64-g1-k2-r64\""));
  EXPECT_THAT(run.output, HasSubstr("model.d_wide"));
  EXPECT_FALSE(fs::exists(dir + "/bad"));  // nothing ran
}

}  // namespace
}  // namespace aoetron::study
