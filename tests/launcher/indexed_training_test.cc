// Training on Megatron indexed datasets (data.source indexed), and what every data source
// promises the trainer: the data-parallel slicing of the sample sequence, resuming from
// consumed_samples, and a global batch that is the same samples whatever the micro-batch cut.
//
// Each test writes its own small dataset (a bigram chain, so the loss can fall) with
// data::IndexedDatasetWriter; the test on the prepared KJV corpus is skipped when
// scripts/prepare_corpus.sh --kjv-only has not run.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>
#include <sstream>

#include "data/indexed_dataset_writer.h"
#include "json_test_util.h"
#include "launcher/batch_source.h"
#include "launcher/config_loader.h"
#include "launcher/indexed_source.h"
#include "launcher/trainer.h"

namespace aoetron {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr int kVocab = 64;

// `documents` documents of 40–200 tokens walking a fixed bigram chain with 2 successors per
// token; `bad_token` (if ≥ 0) is written once in the middle of the first document.
std::string WriteChainDataset(const std::string& dir, const std::string& name, int documents,
                              int bad_token = -1) {
  const std::string prefix = dir + "/" + name;
  auto writer = data::IndexedDatasetWriter::Create(prefix, data::TokenDType::kUInt16);
  EXPECT_TRUE(writer.ok()) << writer.status();
  std::mt19937 rng(7);
  std::vector<int32_t> successor(kVocab * 2);
  for (int32_t& s : successor) s = static_cast<int32_t>(rng() % kVocab);
  for (int d = 0; d < documents; ++d) {
    std::vector<int32_t> tokens(40 + rng() % 160);
    tokens[0] = static_cast<int32_t>(rng() % kVocab);
    for (size_t i = 1; i < tokens.size(); ++i) {
      tokens[i] = successor[tokens[i - 1] * 2 + rng() % 2];
    }
    if (d == 0 && bad_token >= 0) tokens[tokens.size() / 2] = bad_token;
    EXPECT_TRUE((*writer)->AddDocument(tokens).ok());
  }
  EXPECT_TRUE((*writer)->Finish().ok());
  return prefix;
}

config::TrainConfig IndexedConfig(const std::string& dir, const std::string& datasets,
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
                                        "train.micro_batch_size=4",
                                        "train.global_batch_size=8",
                                        "train.eval_interval=20",
                                        "train.eval_steps=3",
                                        "logging.interval=10",
                                        "logging.progress=never",
                                        "parallel.threads=1",
                                        "data.source=indexed",
                                        "data.datasets=" + datasets,
                                        "data.split=90,10,0",
                                        "data.index_cache_dir=" + dir + "/cache",
                                        "logging.metrics_file=" + dir + "/metrics.jsonl"};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  absl::StatusOr<config::TrainConfig> config = LoadTrainConfig("", overrides);
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

double Mean(const std::vector<double>& v, size_t begin, size_t end) {
  return std::accumulate(v.begin() + begin, v.begin() + end, 0.0) /
         static_cast<double>(end - begin);
}

TEST(IndexedTrainingTest, LossFallsValidationIsReportedAndSamplesAreCounted) {
  const std::string dir = testing::MakeTempDir("indexed_train");
  const std::string prefix = WriteChainDataset(dir, "chain", 300);
  std::ostringstream out, err;
  auto trainer = Trainer::Create(IndexedConfig(dir, prefix), TrainerIo{&out, &err, false});
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  auto summary = (*trainer)->Train();
  ASSERT_TRUE(summary.ok()) << summary.status();
  ASSERT_EQ(summary->losses.size(), 40u);
  EXPECT_NEAR(summary->losses.front(), std::log(64.0), 0.3);
  // Two successors per token: the floor is about ln 2.
  EXPECT_LT(Mean(summary->losses, 35, 40), Mean(summary->losses, 0, 5) - 1.5);
  ASSERT_TRUE(summary->final_val_loss.has_value());
  EXPECT_LT(*summary->final_val_loss, Mean(summary->losses, 0, 5) - 1.5);
  EXPECT_EQ((*trainer)->consumed_samples(), 40 * 8);
  EXPECT_EQ((*trainer)->tokens_per_step(), 8 * 32);
  const std::vector<std::string> lines =
      testing::NonEmptyLines(testing::ReadFileToString(dir + "/metrics.jsonl"));
  int with_val_loss = 0;
  for (const std::string& line : lines) with_val_loss += line.find("\"val_loss\"") != line.npos;
  EXPECT_EQ(with_val_loss, 2);  // steps 20 and 40
  // The sample index was cached where the config said.
  EXPECT_FALSE(std::filesystem::is_empty(dir + "/cache"));
}

TEST(IndexedTrainingTest, BlendOfTwoDatasetsTrains) {
  const std::string dir = testing::MakeTempDir("indexed_blend");
  const std::string a = WriteChainDataset(dir, "a", 100);
  const std::string b = WriteChainDataset(dir, "b", 60);
  std::ostringstream out, err;
  auto blended = Trainer::Create(
      IndexedConfig(dir, "0.7 " + a + " 0.3 " + b,
                    {"train.steps=3", "train.eval_interval=3", "schedule.warmup_steps=0"}),
      TrainerIo{&out, &err, false});
  ASSERT_TRUE(blended.ok()) << blended.status();
  auto summary = (*blended)->Train();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_TRUE(summary->final_val_loss.has_value());
}

// Rank r of dp reads micro-batch m·dp + r of the one-rank sequence, for both kinds of source.
void ExpectDataParallelSlicesAndResume(config::TrainConfig config) {
  // A whole number of micro-batch steps at every dp below; the same global batch (and so the
  // same sample index, which depends on train.steps × global batch) for all of them.
  config.mutable_train()->set_global_batch_size(16);
  const int64_t mbs = config.train().micro_batch_size(), seq = config.model().seq_len();
  auto read = [&](const DataParallelPosition& position, int count) {
    auto streams = OpenDataStreams(config, position);
    EXPECT_TRUE(streams.ok()) << streams.status();
    std::vector<std::vector<int32_t>> batches;
    Tensor tokens = Tensor::Empty({mbs, seq}, DType::kI32);
    Tensor targets = Tensor::Empty({mbs, seq}, DType::kI32);
    for (int i = 0; i < count; ++i) {
      EXPECT_TRUE(streams->train->Next(tokens, targets).ok());
      batches.emplace_back(tokens.data<int32_t>(), tokens.data<int32_t>() + tokens.numel());
      // Targets are the tokens shifted by one.
      for (int64_t b = 0; b < mbs; ++b) {
        for (int64_t t = 0; t + 1 < seq; ++t) {
          EXPECT_EQ(targets.data<int32_t>()[b * seq + t], tokens.data<int32_t>()[b * seq + t + 1]);
        }
      }
    }
    EXPECT_EQ(streams->train->consumed_samples(),
              position.consumed_samples + count * mbs * position.dp_size);
    return batches;
  };
  const auto one_rank = read(DataParallelPosition{0, 1, true, 0}, 8);
  for (int dp : {2, 4}) {
    for (int r = 0; r < dp; ++r) {
      const auto slice = read(DataParallelPosition{r, dp, true, 0}, 8 / dp);
      for (int m = 0; m < 8 / dp; ++m) {
        EXPECT_EQ(slice[m], one_rank[m * dp + r]) << "dp " << dp << " rank " << r << " m " << m;
      }
    }
  }
  // Resume: a stream opened at consumed_samples c continues exactly.
  const auto resumed = read(DataParallelPosition{0, 1, true, 5 * mbs}, 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(resumed[i], one_rank[5 + i]);
  const auto resumed_dp2 = read(DataParallelPosition{1, 2, true, 4 * mbs}, 2);
  EXPECT_EQ(resumed_dp2[0], one_rank[5]);
  EXPECT_EQ(resumed_dp2[1], one_rank[7]);
}

TEST(DataStreamsTest, IndexedSourceSlicesPerRankAndResumes) {
  const std::string dir = testing::MakeTempDir("indexed_slices");
  const std::string prefix = WriteChainDataset(dir, "chain", 100);
  ExpectDataParallelSlicesAndResume(IndexedConfig(dir, prefix));
}

TEST(DataStreamsTest, SyntheticSourceSlicesPerRankAndResumes) {
  const std::string dir = testing::MakeTempDir("synthetic_slices");
  config::TrainConfig config = IndexedConfig(dir, "unused");
  config.mutable_data()->set_source(config::DataSection::synthetic);
  ExpectDataParallelSlicesAndResume(config);
}

// A global batch of 8 in micro-batches of 4 and of 8 trains on the same samples: same loss and
// gradient norm (aux loss off: it is computed per micro-batch).
// A checkpoint records the sample order its run read; resuming under another order is refused
// with a message naming the checkpoint, both orders and the setting that keeps the samples; the
// same order resumes. A checkpoint without the record predates it and read aoetron_v1.
TEST(IndexedTrainingTest, ResumeUnderAnotherSampleOrderIsRefused) {
  const std::string dir = testing::MakeTempDir("indexed_order");
  const std::string prefix = WriteChainDataset(dir, "chain", 100);
  auto config = [&](const std::string& order, int steps) {
    return IndexedConfig(
        dir, prefix,
        {"train.steps=" + std::to_string(steps), "train.eval_interval=0", "schedule.warmup_steps=0",
         "checkpoint.interval=2", "checkpoint.dir=" + dir + "/ckpt_" + order,
         "checkpoint.async=false", "data.sample_order=" + order});
  };
  for (const std::string order : {"megatron_core", "aoetron_v1"}) {
    std::ostringstream out, err;
    auto trainer = Trainer::Create(config(order, 2), TrainerIo{&out, &err, false});
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    ASSERT_TRUE((*trainer)->Train().ok());
  }
  for (const std::string saved : {"megatron_core", "aoetron_v1"}) {
    const std::string other = saved == "megatron_core" ? "aoetron_v1" : "megatron_core";
    const std::string step = dir + "/ckpt_" + saved + "/step_2";
    std::ostringstream out, err;
    TrainerOptions options;
    options.resume_from = step;
    auto refused = Trainer::Create(config(other, 4), TrainerIo{&out, &err, false}, {}, options);
    ASSERT_FALSE(refused.ok()) << saved << " resumed under " << other;
    EXPECT_TRUE(absl::IsFailedPrecondition(refused.status()));
    EXPECT_THAT(std::string(refused.status().message()),
                AllOf(HasSubstr(step), HasSubstr("read its samples in the " + saved + " order"),
                      HasSubstr("in the " + other + " order"),
                      HasSubstr("--set data.sample_order=" + saved)));
    auto resumed = Trainer::Create(config(saved, 4), TrainerIo{&out, &err, false}, {}, options);
    ASSERT_TRUE(resumed.ok()) << resumed.status();
    ASSERT_TRUE((*resumed)->Train().ok());
  }
  // Before the record: aoetron_v1.
  const config::TrainConfig megatron = config("megatron_core", 4);
  absl::Status old = CheckResumedSampleOrder(megatron, {{"optimizer_steps", 2}}, "old/step_2");
  EXPECT_THAT(std::string(old.message()), HasSubstr("predates Megatron-Core's order"));
  EXPECT_TRUE(CheckResumedSampleOrder(config("aoetron_v1", 4), {}, "old/step_2").ok());
  EXPECT_FALSE(CheckResumedSampleOrder(megatron, {{"data_sample_order", 7}}, "x").ok());
}

TEST(IndexedTrainingTest, GlobalBatchIsTheSameSamplesWhateverTheMicroBatch) {
  const std::string dir = testing::MakeTempDir("indexed_global");
  const std::string prefix = WriteChainDataset(dir, "chain", 100);
  StepResult results[2];
  for (int i = 0; i < 2; ++i) {
    std::ostringstream out, err;
    auto trainer = Trainer::Create(
        IndexedConfig(dir, prefix,
                      {"model.aux_loss_coeff=0",
                       i == 0 ? "train.micro_batch_size=8" : "train.micro_batch_size=4"}),
        TrainerIo{&out, &err, false});
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    EXPECT_EQ((*trainer)->batch_layout().micro_batches_per_rank, i == 0 ? 1 : 2);
    auto result = (*trainer)->RunStep(0);
    ASSERT_TRUE(result.ok()) << result.status();
    results[i] = *result;
  }
  EXPECT_NEAR(results[1].loss, results[0].loss, 1e-5);
  EXPECT_NEAR(results[1].grad_norm, results[0].grad_norm, 1e-4 * results[0].grad_norm);
}

TEST(IndexedTrainingTest, ATokenOutsideTheVocabularyStopsTheStepNamingTheFile) {
  const std::string dir = testing::MakeTempDir("indexed_bad");
  const std::string prefix = WriteChainDataset(dir, "bad", 100, /*bad_token=*/70);
  std::ostringstream out, err;
  auto trainer = Trainer::Create(IndexedConfig(dir, prefix, {"train.eval_interval=0"}),
                                 TrainerIo{&out, &err, false});
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::Status failure;
  for (int64_t s = 0; s < 40 && failure.ok(); ++s) failure = (*trainer)->RunStep(s).status();
  ASSERT_FALSE(failure.ok()) << "the bad token was never read";
  EXPECT_THAT(std::string(failure.message()), HasSubstr("reading the training data"));
  EXPECT_THAT(std::string(failure.message()), HasSubstr("indexed_bad/bad"));
  EXPECT_THAT(std::string(failure.message()), HasSubstr("token 70"));
}

TEST(IndexedTrainingTest, AMissingDatasetIsAnErrorNamingIt) {
  const std::string dir = testing::MakeTempDir("indexed_missing");
  auto trainer = Trainer::Create(IndexedConfig(dir, dir + "/nowhere"));
  ASSERT_FALSE(trainer.ok());
  EXPECT_THAT(std::string(trainer.status().message()), HasSubstr("nowhere"));
  EXPECT_THAT(std::string(trainer.status().message()), HasSubstr("data.datasets"));
}

TEST(QuickstartConfigTest, IsValidForOneAndTwoRanks) {
  const std::string path = std::string(AOETRON_SOURCE_DIR) + "/configs/quickstart_aoe.textproto";
  for (int world : {1, 2}) {
    absl::StatusOr<config::TrainConfig> config = LoadTrainConfig(path, {}, world);
    ASSERT_TRUE(config.ok()) << "world " << world << ": " << config.status();
    EXPECT_EQ(config->data().source(), config::DataSection::indexed);
    EXPECT_EQ(ResolveBatchLayout(*config, world).global_batch_size, 16);
  }
}

// The prepared corpus (scripts/prepare_corpus.sh --kjv-only), as the quickstart uses it.
TEST(IndexedTrainingTest, PreparedKjvCorpusTrains) {
  const std::string root = AOETRON_SOURCE_DIR;
  const std::string prefix = root + "/corpora/datasets/kjv_kjv8k";
  if (!std::filesystem::exists(prefix + ".manifest")) {
    GTEST_SKIP() << prefix << " missing: run scripts/prepare_corpus.sh --kjv-only";
  }
  const std::string dir = testing::MakeTempDir("kjv");
  std::ostringstream out, err;
  auto trainer = Trainer::Create(
      IndexedConfig(dir, prefix,
                    {"model.vocab_size=8192", "model.seq_len=64", "train.steps=20",
                     "train.eval_interval=20", "train.eval_steps=2", "data.split=969,30,1",
                     "optimizer.lr=2e-2", "schedule.warmup_steps=2"}),
      TrainerIo{&out, &err, false});
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  auto summary = (*trainer)->Train();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_NEAR(summary->losses.front(), std::log(8192.0), 0.3);
  EXPECT_LT(summary->losses.back(), summary->losses.front() - 1.0);
  ASSERT_TRUE(summary->final_val_loss.has_value());
  EXPECT_LT(*summary->final_val_loss, summary->losses.front() - 1.0);
}

}  // namespace
}  // namespace aoetron
