// Validation: each inconsistent value is rejected with a message naming the fields involved as
// the config spells them (and their values), and consistent configs pass.
#include "launcher/config_validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "launcher/config_loader.h"

namespace aoetron {
namespace {

using ::testing::HasSubstr;

struct BadConfigCase {
  std::vector<std::string> overrides;
  std::string expected_message;  // a substring of the error
};

class BadConfigTest : public ::testing::TestWithParam<BadConfigCase> {};

TEST_P(BadConfigTest, IsRejectedNamingTheField) {
  config::TrainConfig c;
  for (const std::string& assignment : GetParam().overrides) {
    ASSERT_TRUE(ApplyConfigOverride(assignment, &c).ok()) << assignment;
  }
  const absl::Status status = ValidateTrainConfig(c);
  ASSERT_FALSE(status.ok()) << "accepted: " << ::testing::PrintToString(GetParam().overrides);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr(GetParam().expected_message));
}

INSTANTIATE_TEST_SUITE_P(
    Model, BadConfigTest,
    ::testing::Values(
        BadConfigCase{{"model.d_model=250"},
                      "model.d_model (250) must be divisible by model.n_heads (4)"},
        BadConfigCase{{"model.top_k=9"}, "model.top_k (9) must be ≤ model.n_experts (8)"},
        BadConfigCase{{"model.ffn=moe", "model.top_k=0"},
                      "model.top_k must be ≥ 1 for model.ffn moe"},
        BadConfigCase{{"model.top_k=0"}, "model.top_k must be ≥ 1 for model.ffn aoe"},
        BadConfigCase{{"model.d_model=12", "model.n_heads=4"},
                      "model.d_model / model.n_heads (12 / 4 = 3) must be even"},
        BadConfigCase{{"model.d_low=0"}, "model.d_low must be ≥ 1"},
        BadConfigCase{{"model.d_wide=-5"}, "model.d_wide must be ≥ 0"},
        BadConfigCase{{"model.d_ffn=1", "model.d_low=100000"}, "set model.d_wide explicitly"},
        BadConfigCase{
            {"model.aoe_score_block=-1"},
            "model.aoe_score_block must be ≥ 0 (got -1); 0 picks a block automatically (8 experts"},
        BadConfigCase{{"model.seq_len=1"}, "model.seq_len must be ≥ 2 (got 1)"},
        BadConfigCase{{"model.vocab_size=0"}, "model.vocab_size must be ≥ 1"},
        BadConfigCase{{"model.n_layers=0"}, "model.n_layers must be ≥ 1"},
        BadConfigCase{{"model.n_experts=0", "model.top_k=0"}, "model.n_experts must be ≥ 1"},
        BadConfigCase{{"model.aux_loss_coeff=-0.1"}, "model.aux_loss_coeff"},
        BadConfigCase{{"model.norm_eps=0"}, "model.norm_eps must be a finite number > 0"},
        BadConfigCase{{"model.init_std=nan"}, "model.init_std"}));

INSTANTIATE_TEST_SUITE_P(
    OptimizerAndSchedule, BadConfigTest,
    ::testing::Values(
        BadConfigCase{{"optimizer.lr=0"}, "optimizer.lr must be a finite number > 0 (got 0)"},
        BadConfigCase{{"optimizer.lr=-1e-3"}, "optimizer.lr must be a finite number > 0"},
        BadConfigCase{{"optimizer.lr=inf"}, "optimizer.lr"},
        BadConfigCase{{"optimizer.lr=1e-4", "optimizer.min_lr=1e-3"},
                      "optimizer.min_lr (0.001) must be ≤ optimizer.lr (0.0001)"},
        BadConfigCase{{"optimizer.beta1=1"}, "optimizer.beta1 must be in [0, 1)"},
        BadConfigCase{{"optimizer.beta2=-0.5"}, "optimizer.beta2"},
        BadConfigCase{{"optimizer.eps=0"}, "optimizer.eps"},
        BadConfigCase{{"optimizer.weight_decay=-1"}, "optimizer.weight_decay"},
        BadConfigCase{{"optimizer.grad_clip=-1"}, "optimizer.grad_clip"},
        BadConfigCase{{"schedule.warmup_steps=2000"},
                      "schedule.warmup_steps (2000) must be ≤ train.steps (1000)"},
        BadConfigCase{{"schedule.warmup_steps=-1"}, "schedule.warmup_steps must be ≥ 0"},
        BadConfigCase{{"schedule.wsd_decay_fraction=1.5"}, "schedule.wsd_decay_fraction"}));

INSTANTIATE_TEST_SUITE_P(
    TrainDataParallelLogging, BadConfigTest,
    ::testing::Values(
        BadConfigCase{{"train.steps=0"}, "train.steps must be ≥ 1"},
        BadConfigCase{{"train.micro_batch_size=0"}, "train.micro_batch_size must be ≥ 1"},
        BadConfigCase{{"train.grad_accum_steps=0"}, "train.grad_accum_steps must be ≥ 1"},
        BadConfigCase{{"train.eval_interval=-1"}, "train.eval_interval must be ≥ 0"},
        BadConfigCase{{"train.eval_steps=0"}, "train.eval_steps must be ≥ 1"},
        BadConfigCase{{"data.source=token_file"}, "data.token_file_path must be set"},
        BadConfigCase{
            {"data.source=token_file", "data.token_file_path=x.bin", "data.eval_fraction=0"},
            "data.eval_fraction must be > 0"},
        BadConfigCase{
            {"data.source=token_file", "data.token_file_path=x.bin", "data.eval_fraction=1"},
            "data.eval_fraction must be in [0, 1)"},
        BadConfigCase{{"data.synthetic_branching=9000"},
                      "data.synthetic_branching (9000) must be ≤ model.vocab_size (8192)"},
        BadConfigCase{{"data.synthetic_branching=0"}, "data.synthetic_branching must be ≥ 1"},
        BadConfigCase{{"parallel.tp=2"}, "parallel.tp=2 needs 2 ranks"},
        BadConfigCase{{"parallel.ep=4"}, "parallel.ep=4 needs 4 ranks"},
        BadConfigCase{{"parallel.tp=2", "parallel.ep=2"},
                      "parallel.tp=2 × parallel.ep=2 needs 4 ranks"},
        BadConfigCase{{"parallel.ep=3"},
                      "model.n_experts (8) must be divisible by parallel.ep (3)"},
        BadConfigCase{{"parallel.ep=2", "model.ffn=dense"}, "model.ffn is dense"},
        BadConfigCase{{"parallel.tp=3"}, "model.n_heads (4) must be divisible by parallel.tp (3)"},
        BadConfigCase{{"parallel.tp=0"}, "parallel.tp must be ≥ 1"},
        BadConfigCase{{"parallel.threads=-1"}, "parallel.threads must be ≥ 0"},
        BadConfigCase{{"checkpoint.interval=-1"}, "checkpoint.interval must be ≥ 0"},
        BadConfigCase{{"logging.interval=0"}, "logging.interval must be ≥ 1"},
        BadConfigCase{{"parallel.grad_bucket_mb=0"}, "parallel.grad_bucket_mb must be"},
        BadConfigCase{{"parallel.collective_timeout_s=-1"}, "parallel.collective_timeout_s"},
        BadConfigCase{{"parallel.step_timeout_s=-1"}, "parallel.step_timeout_s"}));

INSTANTIATE_TEST_SUITE_P(
    IndexedDataAndGlobalBatch, BadConfigTest,
    ::testing::Values(
        BadConfigCase{{"data.source=indexed"}, "data.datasets must name a dataset prefix"},
        BadConfigCase{{"data.source=indexed", "data.datasets=0.5 a 0.5"},
                      "a blend is pairs \"WEIGHT PREFIX\", but it has 3 words"},
        BadConfigCase{{"data.source=indexed", "data.datasets=x a 1 b"},
                      "weight 1 (\"x\", before a) must be a finite number ≥ 0"},
        BadConfigCase{{"data.source=indexed", "data.datasets=0 a 0 b"}, "the weights sum to 0"},
        BadConfigCase{{"data.source=indexed", "data.datasets=a", "data.split=1,2,3,4"},
                      "data.split \"1,2,3,4\" must be one to three"},
        BadConfigCase{{"data.source=indexed", "data.datasets=a", "data.split=90,x"},
                      "ratio 2 (\"x\")"},
        BadConfigCase{{"data.source=indexed", "data.datasets=a", "data.split=0,1,0"},
                      "leaves no training data"},
        BadConfigCase{{"data.source=indexed", "data.datasets=a", "data.split=100"},
                      "leaves no validation data (the second ratio is 0), but "
                      "train.eval_interval (100) asks for evaluation"},
        BadConfigCase{{"train.global_batch_size=12"},
                      "train.global_batch_size (12) must be a multiple of "
                      "train.micro_batch_size (8) × the data-parallel size 1 = 8"},
        BadConfigCase{{"train.global_batch_size=-8"}, "train.global_batch_size must be ≥ 0"},
        BadConfigCase{{"train.global_batch_size=32", "train.grad_accum_steps=2"},
                      "train.grad_accum_steps (2) disagrees with train.global_batch_size (32)"}));

TEST(ValidateTrainConfigTest, AcceptsConsistentConfigs) {
  EXPECT_TRUE(ValidateTrainConfig(config::TrainConfig()).ok());
  config::TrainConfig dense;
  dense.mutable_model()->set_ffn(config::ModelSection::dense);
  dense.mutable_model()->set_top_k(0);  // ignored without experts
  dense.mutable_model()->set_d_low(0);
  EXPECT_TRUE(ValidateTrainConfig(dense).ok()) << ValidateTrainConfig(dense);
  config::TrainConfig moe;
  moe.mutable_model()->set_ffn(config::ModelSection::moe);
  moe.mutable_model()->set_d_low(0);  // AoE only
  EXPECT_TRUE(ValidateTrainConfig(moe).ok()) << ValidateTrainConfig(moe);
  config::TrainConfig warmup_all;
  warmup_all.mutable_train()->set_steps(10);
  warmup_all.mutable_schedule()->set_warmup_steps(10);
  EXPECT_TRUE(ValidateTrainConfig(warmup_all).ok());
}

TEST(ValidateDeviceTest, CudaNeedsTheBackendAndAGpuPerLocalRank) {
  config::TrainConfig c;
  ASSERT_TRUE(ApplyConfigOverride("parallel.device=cuda", &c).ok());
  const absl::Status no_backend = ValidateDevice(c, 1, /*cuda_backend_built=*/false, 0);
  EXPECT_EQ(no_backend.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(no_backend.message()),
              HasSubstr("parallel.device is cuda, but this build has no CUDA backend"));
  const absl::Status few = ValidateDevice(c, 4, /*cuda_backend_built=*/true, 2);
  EXPECT_THAT(std::string(few.message()),
              HasSubstr("parallel.device is cuda with 4 ranks on this node, but 2 GPUs are "
                        "visible"));
  EXPECT_TRUE(ValidateDevice(c, 2, true, 2).ok());
  EXPECT_EQ(DeviceFromConfig(c, 1), Device::Cuda(1));
  for (const char* host : {"parallel.device=cpu", "parallel.device=strict_cpu"}) {
    config::TrainConfig h;
    ASSERT_TRUE(ApplyConfigOverride(host, &h).ok()) << host;
    EXPECT_TRUE(ValidateDevice(h, 8, false, 0).ok()) << host;
  }
  config::TrainConfig strict;
  ASSERT_TRUE(ApplyConfigOverride("parallel.device=strict_cpu", &strict).ok());
  EXPECT_EQ(DeviceFromConfig(strict, 3), Device::StrictCpu());
  EXPECT_EQ(DeviceFromConfig(config::TrainConfig(), 3), Device::Cpu());
}

TEST(ValidateTrainConfigTest, ParallelLayoutMustFitTheWorld) {
  config::TrainConfig c;
  // A router MoE: the default AoE's derived width (1337) is not tp-splittable (tested below).
  c.mutable_model()->set_ffn(config::ModelSection::moe);
  c.mutable_parallel()->set_tp(2);
  c.mutable_parallel()->set_ep(2);
  EXPECT_TRUE(ValidateTrainConfig(c, /*world_size=*/4).ok());
  EXPECT_TRUE(ValidateTrainConfig(c, /*world_size=*/8).ok());  // dp = 4
  const absl::Status six = ValidateTrainConfig(c, /*world_size=*/6);
  EXPECT_THAT(std::string(six.message()), HasSubstr("this run has 6 ranks"));
}

// A derived AoE width that tp cannot split is a config error naming model.d_wide and a width
// that works, before any model is built (it was a failed CHECK in GptModel).
TEST(ValidateTrainConfigTest, ADerivedAoeWidthIsOneTpCanSplit) {
  config::TrainConfig c;
  c.mutable_model()->set_ffn(config::ModelSection::aoe);
  c.mutable_model()->set_d_model(256);
  c.mutable_model()->set_d_ffn(1024);
  c.mutable_model()->set_d_low(64);  // (3·256·1024 − 64·256)/576 = 1336.9 → 1344 = 21·64
  c.mutable_parallel()->set_tp(2);
  EXPECT_TRUE(ValidateTrainConfig(c, 2).ok()) << ValidateTrainConfig(c, 2);
  // An explicit width is taken as given, so tp must divide it; the error names one that works.
  c.mutable_model()->set_d_wide(1337);
  const absl::Status status = ValidateTrainConfig(c, /*world_size=*/2);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), testing::HasSubstr("model.d_wide: 1336"));
  c.mutable_model()->set_d_wide(1336);
  EXPECT_TRUE(ValidateTrainConfig(c, 2).ok()) << ValidateTrainConfig(c, 2);
}

// Each inconsistent MoE option names its field and a value that would work (issue 12).
TEST(ValidateTrainConfigTest, MoeOptionsNameTheFieldAndAValueThatWorks) {
  auto moe = [] {
    config::TrainConfig c;
    c.mutable_model()->set_ffn(config::ModelSection::moe);
    c.mutable_model()->set_d_ffn(1024);
    c.mutable_model()->set_n_experts(8);
    c.mutable_model()->set_top_k(2);
    return c;
  };
  auto message = [](const config::TrainConfig& c, int world) {
    return std::string(ValidateTrainConfig(c, world).message());
  };
  config::TrainConfig c = moe();
  c.mutable_model()->set_granularity(3);  // 1024 / 3 is no width
  EXPECT_THAT(message(c, 1), HasSubstr("model.granularity (3) must divide model.d_ffn (1024)"));
  EXPECT_THAT(message(c, 1), HasSubstr("model.granularity: 2"));
  c.mutable_model()->set_granularity(4);
  EXPECT_TRUE(ValidateTrainConfig(c, 1).ok()) << message(c, 1);
  c.mutable_model()->set_top_k(9);  // 36 of 32 fine-grained experts
  EXPECT_THAT(message(c, 1), HasSubstr("model.top_k × model.granularity (9 × 4 = 36"));
  EXPECT_THAT(message(c, 1), HasSubstr("model.top_k: 8"));

  c = moe();
  c.mutable_model()->set_expert_bias_rate(-0.001);
  EXPECT_THAT(message(c, 1), HasSubstr("model.expert_bias_rate must be a finite number ≥ 0"));
  c = moe();
  c.mutable_model()->set_z_loss_coeff(-1);
  EXPECT_THAT(message(c, 1), HasSubstr("model.z_loss_coeff"));
  c = moe();
  c.mutable_model()->set_d_expert(-8);  // resolved away by the conversion: checked before it
  EXPECT_THAT(message(c, 1), HasSubstr("model.d_expert must be ≥ 0"));
  c = moe();
  c.mutable_model()->set_d_shared(-8);
  EXPECT_THAT(message(c, 1), HasSubstr("model.d_shared must be ≥ 0"));

  c = moe();
  c.mutable_model()->set_n_shared_experts(1);
  c.mutable_model()->set_d_shared(501);
  c.mutable_parallel()->set_tp(2);
  EXPECT_THAT(message(c, 2), HasSubstr("shared experts' width"));
  EXPECT_THAT(message(c, 2), HasSubstr("model.d_shared: 500"));
  c.mutable_model()->set_d_shared(500);
  EXPECT_TRUE(ValidateTrainConfig(c, 2).ok()) << message(c, 2);

  c = moe();
  c.mutable_model()->set_d_expert(301);
  c.mutable_parallel()->set_tp(2);
  EXPECT_THAT(message(c, 2), HasSubstr("model.d_expert: 300"));

  c = moe();
  c.mutable_model()->set_granularity(3);
  c.mutable_model()->set_d_ffn(768);
  c.mutable_parallel()->set_ep(4);  // 24 fine-grained experts over 4 ranks: fine
  EXPECT_TRUE(ValidateTrainConfig(c, 4).ok()) << message(c, 4);
  c.mutable_parallel()->set_ep(16);
  EXPECT_THAT(message(c, 16), HasSubstr("model.n_experts × model.granularity (24 routed"));

  c = moe();
  c.mutable_model()->set_ffn(config::ModelSection::aoe);
  c.mutable_model()->set_router_score(config::ModelSection::sigmoid);
  EXPECT_THAT(message(c, 1), HasSubstr("model.router_score sigmoid applies to model.ffn moe only"));
}

TEST(ValidateTrainConfigTest, GlobalBatchMustCutIntoMicroBatchesOnEveryDataParallelRank) {
  config::TrainConfig c;
  c.mutable_train()->set_micro_batch_size(4);
  c.mutable_train()->set_global_batch_size(16);
  EXPECT_TRUE(ValidateTrainConfig(c, 1).ok());
  EXPECT_TRUE(ValidateTrainConfig(c, 4).ok());  // dp 4: one micro-batch each
  const absl::Status eight = ValidateTrainConfig(c, 8);
  EXPECT_THAT(std::string(eight.message()),
              HasSubstr("train.micro_batch_size (4) × the data-parallel size 8 = 32"));
  c.mutable_parallel()->set_tp(2);
  c.mutable_model()->set_n_heads(4);
  const absl::Status tp = ValidateTrainConfig(c, 16);
  EXPECT_THAT(std::string(tp.message()),
              HasSubstr("the data-parallel size 8 (world 16 / parallel.tp 2)"));
  // grad_accum_steps may be given when it agrees.
  c.mutable_parallel()->set_tp(1);
  c.mutable_train()->set_grad_accum_steps(2);
  EXPECT_TRUE(ValidateTrainConfig(c, 2).ok());
  EXPECT_FALSE(ValidateTrainConfig(c, 1).ok());
}

}  // namespace
}  // namespace aoetron
