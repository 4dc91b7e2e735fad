// The trainer end to end on a tiny AoE model: learning, logging, determinism, accumulation and
// stopping on non-finite values.
#include "launcher/trainer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <sstream>

#include "json_test_util.h"
#include "launcher/bench.h"
#include "launcher/config_loader.h"

namespace aoetron {
namespace {

using ::testing::HasSubstr;

// Vocabulary 64 on a bigram chain with 4 successors: the loss starts near ln 64 ≈ 4.16 and can
// fall to ln 4 ≈ 1.39.
config::TrainConfig TinyAoeConfig(const std::string& run_dir,
                                  const std::vector<std::string>& extra = {}) {
  std::vector<std::string> overrides = {"model.vocab_size=64",
                                        "model.d_model=32",
                                        "model.n_layers=2",
                                        "model.n_heads=2",
                                        "model.seq_len=32",
                                        "model.d_ffn=64",
                                        "model.ffn=aoe",
                                        "model.n_experts=4",
                                        "model.top_k=2",
                                        "model.d_low=8",
                                        "optimizer.lr=1e-2",
                                        "optimizer.min_lr=1e-3",
                                        "schedule.warmup_steps=5",
                                        "train.steps=40",
                                        "train.micro_batch_size=8",
                                        "train.eval_interval=20",
                                        "train.eval_steps=2",
                                        "logging.interval=10",
                                        "logging.progress=never",
                                        "parallel.threads=1",
                                        "logging.metrics_file=" + run_dir + "/metrics.jsonl"};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  absl::StatusOr<config::TrainConfig> config = LoadTrainConfig("", overrides);
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

double Mean(const std::vector<double>& values, size_t begin, size_t end) {
  return std::accumulate(values.begin() + begin, values.begin() + end, 0.0) /
         static_cast<double>(end - begin);
}

TEST(TrainerTest, LossFallsAndEveryLoggedStepIsOneJsonLine) {
  const std::string dir = testing::MakeTempDir("train");
  std::ostringstream out, err;
  TrainerIo io{&out, &err, /*out_is_terminal=*/true};  // progress=never still gives JSON
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(TinyAoeConfig(dir), io);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<TrainSummary> summary = (*trainer)->Train();
  ASSERT_TRUE(summary.ok()) << summary.status();

  ASSERT_EQ(summary->losses.size(), 40u);
  for (double loss : summary->losses) ASSERT_TRUE(std::isfinite(loss));
  EXPECT_NEAR(summary->losses.front(), std::log(64.0), 0.3);
  const double first = Mean(summary->losses, 0, 5), last = Mean(summary->losses, 35, 40);
  EXPECT_LT(last, first - 1.0) << "first steps " << first << ", last steps " << last;
  ASSERT_TRUE(summary->final_val_loss.has_value());
  EXPECT_LT(*summary->final_val_loss, first - 1.0);

  // Logged steps: 1, every 10th, and the evaluations at 20 and 40.
  const std::vector<int> expected_steps = {1, 10, 20, 30, 40};
  const std::vector<std::string> file_lines =
      testing::NonEmptyLines(testing::ReadFileToString(dir + "/metrics.jsonl"));
  const std::vector<std::string> out_lines = testing::NonEmptyLines(out.str());
  ASSERT_EQ(file_lines.size(), expected_steps.size());
  ASSERT_EQ(out_lines, file_lines);  // stdout carries the same JSON when progress=never
  for (size_t i = 0; i < file_lines.size(); ++i) {
    absl::StatusOr<google::protobuf::Struct> json = testing::ParseJsonObject(file_lines[i]);
    ASSERT_TRUE(json.ok()) << json.status();
    const auto& f = json->fields();
    EXPECT_EQ(f.at("step").number_value(), expected_steps[i]);
    EXPECT_NEAR(f.at("loss").number_value(), summary->losses[expected_steps[i] - 1], 1e-7);
    for (const char* key :
         {"aux_loss", "grad_norm", "lr", "tokens_per_s", "model_tflops", "step_ms", "tokens"}) {
      ASSERT_TRUE(f.contains(key)) << key;
      EXPECT_GT(f.at(key).number_value(), 0.0) << key;
    }
    EXPECT_EQ(f.at("tokens").number_value(), expected_steps[i] * 8 * 32);
    EXPECT_EQ(f.contains("val_loss"), expected_steps[i] % 20 == 0) << file_lines[i];
    for (const char* key : {"load_min", "load_max", "ent_load", "ent_conf"}) {
      EXPECT_EQ(f.at(key).list_value().values_size(), 2) << key;  // one per layer
    }
    const double load_min = f.at("load_min").list_value().values(0).number_value();
    const double load_max = f.at("load_max").list_value().values(0).number_value();
    EXPECT_LE(load_min, 0.25 + 1e-9);  // 4 experts: the least loaded has at most 1/4
    EXPECT_GE(load_max, 0.25 - 1e-9);
    const double ent_load = f.at("ent_load").list_value().values(0).number_value();
    EXPECT_GT(ent_load, 0.0);
    EXPECT_LE(ent_load, std::log(4.0) + 1e-9);
  }
  EXPECT_THAT(err.str(), HasSubstr("done, 40 steps"));
}

TEST(TrainerTest, HumanProgressLinesWhenAskedFor) {
  const std::string dir = testing::MakeTempDir("human");
  std::ostringstream out, err;
  TrainerIo io{&out, &err, /*out_is_terminal=*/false};
  absl::StatusOr<std::unique_ptr<Trainer>> trainer =
      Trainer::Create(TinyAoeConfig(dir, {"train.steps=3", "schedule.warmup_steps=0",
                                          "logging.progress=always", "train.eval_interval=0"}),
                      io);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  ASSERT_TRUE((*trainer)->Train().ok());
  const std::vector<std::string> lines = testing::NonEmptyLines(out.str());
  ASSERT_EQ(lines.size(), 2u);  // steps 1 and 3 (the last)
  EXPECT_THAT(lines[0], HasSubstr("step 1/3 | loss "));
  EXPECT_THAT(lines[1], HasSubstr("step 3/3 | loss "));
  EXPECT_THAT(lines[1], HasSubstr("Ent_load"));
  // The metrics file is JSON whatever stdout gets.
  EXPECT_EQ(testing::NonEmptyLines(testing::ReadFileToString(dir + "/metrics.jsonl")).size(), 2u);
}

TEST(TrainerTest, SameConfigSameLosses) {
  const std::string dir = testing::MakeTempDir("determinism");
  std::vector<double> runs[2];
  for (auto& losses : runs) {
    absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(TinyAoeConfig(dir));
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    for (int64_t step = 0; step < 3; ++step) {
      absl::StatusOr<StepResult> result = (*trainer)->RunStep(step);
      ASSERT_TRUE(result.ok()) << result.status();
      losses.push_back(result->loss);
    }
  }
  EXPECT_EQ(runs[0], runs[1]);
}

// Sample j of the stream is the same whatever the micro-batch size (micro-batch i holds samples
// i·B … i·B + B − 1), so 2 micro-batches of 4 with loss scale 1/2 see the same 8 sequences as
// one micro-batch of 8, and must give the same loss and gradient. (The aux loss is computed per
// micro-batch, so it is off here.)
TEST(TrainerTest, GradientAccumulationEqualsOneBigMicroBatch) {
  const std::string dir = testing::MakeTempDir("accum");
  StepResult results[2];
  const std::vector<std::string> layouts[2] = {
      {"train.micro_batch_size=8", "train.grad_accum_steps=1"},
      {"train.micro_batch_size=4", "train.grad_accum_steps=2"}};
  for (int i = 0; i < 2; ++i) {
    std::vector<std::string> overrides = layouts[i];
    overrides.push_back("model.aux_loss_coeff=0");
    absl::StatusOr<std::unique_ptr<Trainer>> trainer =
        Trainer::Create(TinyAoeConfig(dir, overrides));
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    EXPECT_EQ((*trainer)->tokens_per_step(), 8 * 32);
    absl::StatusOr<StepResult> result = (*trainer)->RunStep(0);
    ASSERT_TRUE(result.ok()) << result.status();
    results[i] = *result;
  }
  EXPECT_NEAR(results[0].loss, std::log(64.0), 0.3);
  EXPECT_NEAR(results[1].loss, results[0].loss, 1e-5);
  EXPECT_NEAR(results[1].grad_norm, results[0].grad_norm, 1e-4 * results[0].grad_norm);
  // Expert load merged over the two micro-batches equals the load of the single batch.
  ASSERT_EQ(results[1].layers.size(), 2u);
  EXPECT_NEAR(results[1].layers[0].ent_load, results[0].layers[0].ent_load, 1e-12);
  EXPECT_NEAR(results[1].layers[1].load_max, results[0].layers[1].load_max, 1e-12);
}

TEST(TrainerTest, NonFiniteValuesStopTheRunNamingTheStep) {
  const std::string dir = testing::MakeTempDir("nonfinite");
  // An absurd learning rate sends the weights to ±1e38 after step 1; step 2 overflows.
  std::ostringstream out, err;
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(
      TinyAoeConfig(dir, {"optimizer.lr=1e38", "optimizer.min_lr=0", "optimizer.grad_clip=0",
                          "schedule.warmup_steps=0", "train.steps=5", "train.eval_interval=0"}),
      TrainerIo{&out, &err, false});
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<TrainSummary> summary = (*trainer)->Train();
  ASSERT_FALSE(summary.ok());
  EXPECT_THAT(std::string(summary.status().message()), HasSubstr("step 2:"));
  EXPECT_THAT(std::string(summary.status().message()), HasSubstr("not finite"));
}

TEST(TrainerTest, CreateRejectsAnInvalidConfigNamingTheField) {
  config::TrainConfig c = TinyAoeConfig(testing::MakeTempDir("invalid"));
  c.mutable_model()->set_top_k(7);
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(c);
  ASSERT_FALSE(trainer.ok());
  EXPECT_THAT(std::string(trainer.status().message()), HasSubstr("model.top_k (7)"));
}

TEST(BenchTest, ResultHasTheKeysAndUsesSyntheticData) {
  const std::string dir = testing::MakeTempDir("bench");
  // A token file that does not exist: the bench must not need it.
  config::TrainConfig c = TinyAoeConfig(
      dir, {"data.source=token_file", "data.token_file_path=" + dir + "/missing.bin"});
  BenchOptions options;
  options.warmup_steps = 1;
  options.timed_steps = 2;
  absl::StatusOr<BenchResult> result = RunBench(c, options);
  ASSERT_TRUE(result.ok()) << result.status();
  const std::string line = BenchResultJson(*result);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  absl::StatusOr<google::protobuf::Struct> json = testing::ParseJsonObject(line);
  ASSERT_TRUE(json.ok()) << json.status();
  const auto& f = json->fields();
  for (const char* key : {"tokens_per_s", "step_s", "model_flops_per_s", "peak_rss_bytes",
                          "threads", "tokens_per_step", "flops_per_step", "parameters"}) {
    ASSERT_TRUE(f.contains(key)) << key;
    EXPECT_GT(f.at(key).number_value(), 0.0) << key;
  }
  EXPECT_EQ(f.at("timed_steps").number_value(), 2);
  EXPECT_EQ(f.at("tokens_per_step").number_value(), 8 * 32);
  // Both are printed with 9 significant digits (%.9g: each within 5e-9 relative), so their
  // product is within 1e-8 relative of the 256 tokens (1e-6 absolute failed now and then).
  EXPECT_NEAR(f.at("tokens_per_s").number_value() * f.at("step_s").number_value(), 8 * 32,
              8 * 32 * 1e-8);
  const auto& config = f.at("config").struct_value().fields();
  EXPECT_EQ(config.at("model").struct_value().fields().at("ffn").string_value(), "aoe");
  EXPECT_EQ(config.at("data").struct_value().fields().at("source").string_value(), "synthetic");
  // Bench mode writes no metrics file.
  EXPECT_TRUE(testing::ReadFileToString(dir + "/metrics.jsonl").empty());
}

}  // namespace
}  // namespace aoetron
