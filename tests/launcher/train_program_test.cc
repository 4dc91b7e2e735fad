// The aoetron-train program as a user runs it: --help, a bad config, --set handling, bench.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

#include "json_test_util.h"

namespace aoetron {
namespace {

using ::testing::HasSubstr;

struct ProgramRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

ProgramRun RunTrain(const std::string& arguments) {
  const std::string command = std::string(AOETRON_TRAIN_BINARY) + " " + arguments + " 2>&1";
  ProgramRun run;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  std::array<char, 4096> buffer;
  size_t read;
  while ((read = fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
    run.output.append(buffer.data(), read);
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

const std::string kTinyConfig = std::string(AOETRON_SOURCE_DIR) + "/configs/tiny_aoe.textproto";

TEST(TrainProgramTest, HelpDescribesTheFlags) {
  const ProgramRun run = RunTrain("--help");
  EXPECT_THAT(run.output, HasSubstr("--config"));
  EXPECT_THAT(run.output, HasSubstr("--set"));
  EXPECT_THAT(run.output, HasSubstr("--bench"));
  EXPECT_THAT(run.output, HasSubstr("section.field=value"));
}

TEST(TrainProgramTest, BadValuesExitNonZeroNamingTheField) {
  ProgramRun run = RunTrain("--config " + kTinyConfig + " --set model.top_k=9");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.output, HasSubstr("model.top_k (9) must be ≤ model.n_experts (4)"));
  run = RunTrain("--config " + kTinyConfig + " --set parallel.tp=2");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.output, HasSubstr("parallel.tp=2 needs 2 ranks"));
  run = RunTrain("--set=model.n_layer=2");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.output, HasSubstr("\"model.n_layer\""));
  run = RunTrain("--config /no/such/config.textproto");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.output, HasSubstr("/no/such/config.textproto"));
  run = RunTrain("--resume /tmp/somewhere");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.output, HasSubstr("/tmp/somewhere: no such checkpoint directory"));
}

TEST(TrainProgramTest, RepeatedSetLastOneWinsAndCommasSurvive) {
  const ProgramRun run =
      RunTrain("--config " + kTinyConfig +
               " --set train.steps=7 --set=train.steps=9 --set schedule.warmup_steps=0 --set "
               "'logging.metrics_file=/tmp/a,b.jsonl'"
               " --print_config");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("steps: 9\n"));
  EXPECT_THAT(run.output, HasSubstr("metrics_file: \"/tmp/a,b.jsonl\""));
  EXPECT_THAT(run.output, HasSubstr("d_low: 16"));  // from the file
}

TEST(TrainProgramTest, BenchPrintsOneJsonLine) {
  const ProgramRun run = RunTrain("--config " + kTinyConfig +
                                  " --bench --bench_steps 2 --bench_warmup_steps 1 2>/dev/null");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const std::vector<std::string> lines = testing::NonEmptyLines(run.output);
  ASSERT_EQ(lines.size(), 1u) << run.output;
  absl::StatusOr<google::protobuf::Struct> json = testing::ParseJsonObject(lines[0]);
  ASSERT_TRUE(json.ok()) << json.status();
  for (const char* key :
       {"tokens_per_s", "step_s", "model_flops_per_s", "peak_rss_bytes", "threads", "config"}) {
    EXPECT_TRUE(json->fields().contains(key)) << key;
  }
}

}  // namespace
}  // namespace aoetron
