// Every layer's backward against central finite differences in f64, on fresh random inputs:
// the FFN blocks (dense, router MoE, AoE paper and release variants in both memory modes, with
// the aux loss part of the objective), attention, a whole transformer block, and the whole model's
// loss.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/ops/elementwise.h"
#include "models/attention.h"
#include "models/feed_forward.h"
#include "models/gpt_model.h"
#include "models/transformer_block.h"
#include "tests/models/finite_difference.h"

namespace aoetron {
namespace {

using testing::ExpectGradientMatchesFiniteDifferences;
using testing::FillNormal;

ModelConfig TinyConfig(FfnKind kind) {
  ModelConfig c;
  c.vocab_size = 23;
  c.d_model = 16;
  c.n_layers = 2;
  c.n_heads = 4;
  c.seq_len = 8;
  c.d_ffn = 12;
  c.ffn = kind;
  c.n_experts = 5;
  c.top_k = 2;
  c.d_low = 3;
  c.aux_loss_coeff = 0.5;  // large, so the aux-loss path weighs in the checked gradient
  c.init_std = 0.3;        // O(1) signals: the checks are not dominated by tiny numbers
  return c;
}

double Dot(const Tensor& a, const Tensor& b) {
  double sum = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) sum += a.data<double>()[i] * b.data<double>()[i];
  return sum;
}

void CheckAllParameters(ParameterSet& params, const std::function<double()>& objective,
                        std::mt19937_64& rng) {
  // Copy the analytic gradients first: the objective re-runs forward passes only, but keeping the
  // check independent of buffers the model owns is cheaper than reasoning about it.
  for (Parameter& p : params.all()) {
    Tensor grad = Tensor::Empty(p.grad.shape(), DType::kF64);
    ops::Copy(p.grad, grad);
    ExpectGradientMatchesFiniteDifferences(p.name, p.value, grad, objective, rng);
  }
}

struct FfnCase {
  const char* name;
  FfnKind kind;
  AoeGateVariant gate;
  void (*options)(ModelConfig&) = nullptr;  // the MoE design-space options this case turns on
};

// The issue-12 options, large enough to weigh in the checked gradients.
void SigmoidBiasZShared(ModelConfig& c) {
  c.router_score = RouterScore::kSigmoid;
  c.expert_bias_rate = 0.01;
  c.z_loss_coeff = 0.3;
  c.n_shared_experts = 2;
  c.d_shared = 4;
}
void SoftmaxBiasZ(ModelConfig& c) {
  c.expert_bias_rate = 0.01;
  c.z_loss_coeff = 0.3;
}
void BiasZShared(ModelConfig& c) {  // AoE: bias on the norms, z-loss on the norms, shared experts
  c.expert_bias_rate = 0.01;
  c.z_loss_coeff = 0.3;
  c.n_shared_experts = 1;
  c.d_shared = 5;
}
void FineGrained(ModelConfig& c) {  // granularity 2 as the launcher resolves it: 2n of width/2
  c.n_experts *= 2;
  c.top_k *= 2;
  c.d_expert = c.d_ffn / 2;
}

// AoE's blockwise memory mode: 5 experts in blocks of 2 (two full blocks and a narrower last one),
// or in one block.
void Blockwise(ModelConfig& c) {
  c.aoe_memory = AoeMemory::kBlockwise;
  c.aoe_score_block = 2;
}
void BlockwiseOneBlock(ModelConfig& c) { c.aoe_memory = AoeMemory::kBlockwise; }
void BlockwiseBiasZShared(ModelConfig& c) {
  Blockwise(c);
  BiasZShared(c);
}

ModelConfig CaseConfig(const FfnCase& ffn_case) {
  ModelConfig config = TinyConfig(ffn_case.kind);
  config.aoe_gate = ffn_case.gate;
  if (ffn_case.options != nullptr) ffn_case.options(config);
  return config;
}

// The expert bias starts at 0; random values make it decide selections in the checked batch.
// It takes no gradient, and its finite differences are 0 too (selection is piecewise constant).
void RandomizeExpertBias(ParameterSet& params, std::mt19937_64& rng) {
  for (Parameter& p : params.all()) {
    if (!p.trainable) FillNormal(p.master, 1.0, rng);
  }
}

const auto kFfnCases = ::testing::Values(
    FfnCase{"dense", FfnKind::kDense, AoeGateVariant::kPaper},
    FfnCase{"moe", FfnKind::kRouterMoe, AoeGateVariant::kPaper},
    FfnCase{"aoe", FfnKind::kAoe, AoeGateVariant::kPaper},
    FfnCase{"aoe_release", FfnKind::kAoe, AoeGateVariant::kRelease},
    FfnCase{"moe_sigmoid_bias_z_shared", FfnKind::kRouterMoe, AoeGateVariant::kPaper,
            SigmoidBiasZShared},
    FfnCase{"moe_bias_z", FfnKind::kRouterMoe, AoeGateVariant::kPaper, SoftmaxBiasZ},
    FfnCase{"moe_fine_grained", FfnKind::kRouterMoe, AoeGateVariant::kPaper, FineGrained},
    FfnCase{"aoe_bias_z_shared", FfnKind::kAoe, AoeGateVariant::kPaper, BiasZShared},
    FfnCase{"aoe_release_bias", FfnKind::kAoe, AoeGateVariant::kRelease, SoftmaxBiasZ},
    FfnCase{"aoe_fine_grained", FfnKind::kAoe, AoeGateVariant::kPaper, FineGrained},
    FfnCase{"aoe_blockwise", FfnKind::kAoe, AoeGateVariant::kPaper, Blockwise},
    FfnCase{"aoe_release_blockwise", FfnKind::kAoe, AoeGateVariant::kRelease, Blockwise},
    FfnCase{"aoe_blockwise_one_block", FfnKind::kAoe, AoeGateVariant::kPaper, BlockwiseOneBlock},
    FfnCase{"aoe_blockwise_bias_z_shared", FfnKind::kAoe, AoeGateVariant::kPaper,
            BlockwiseBiasZShared});

class FeedForwardGradientTest : public ::testing::TestWithParam<FfnCase> {};

TEST_P(FeedForwardGradientTest, BackwardMatchesFiniteDifferences) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const ModelConfig config = CaseConfig(GetParam());
  ParameterSet params(DType::kF64);
  std::unique_ptr<FeedForward> ffn =
      MakeFeedForward(config, 0, &params, parallel::SingleProcessGroups());
  params.Allocate();
  params.Initialize(seed);
  RandomizeExpertBias(params, rng);

  const int64_t tokens = 11, d = config.d_model;
  Tensor x = Tensor::Empty({tokens, d}, DType::kF64);
  Tensor weights_on_y = Tensor::Empty({tokens, d}, DType::kF64);
  FillNormal(x, 1.0, rng);
  FillNormal(weights_on_y, 1.0, rng);
  ActivationArena arena;
  // Objective: Σ y ⊙ R + L_aux (R random), so dy = R and the aux loss enters with scale 1.
  auto objective = [&] {
    arena.Reset();
    Tensor y = arena.Allocate({tokens, d}, DType::kF64);
    ffn->Forward(x, y, arena);
    return Dot(y, weights_on_y) + ffn->aux_loss();
  };

  objective();
  Tensor dx = Tensor::Zeros({tokens, d}, DType::kF64);
  ffn->Backward(weights_on_y, 1.0f, dx, arena);
  ExpectGradientMatchesFiniteDifferences("dx", x, dx, objective, rng);
  CheckAllParameters(params, objective, rng);
}

INSTANTIATE_TEST_SUITE_P(AllKinds, FeedForwardGradientTest, kFfnCases,
                         [](const auto& info) { return std::string(info.param.name); });

TEST(AttentionGradientTest, BackwardMatchesFiniteDifferences) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const ModelConfig config = TinyConfig(FfnKind::kDense);
  ParameterSet params(DType::kF64);
  CausalSelfAttention attention(config, 0, &params, parallel::SingleProcessGroups());
  params.Allocate();
  params.Initialize(seed);
  const int64_t batch = 2, seq = 5, tokens = batch * seq, d = config.d_model;
  Tensor x = Tensor::Empty({tokens, d}, DType::kF64);
  Tensor r = Tensor::Empty({tokens, d}, DType::kF64);
  FillNormal(x, 1.0, rng);
  FillNormal(r, 1.0, rng);
  ActivationArena arena;
  auto objective = [&] {
    arena.Reset();
    Tensor y = arena.Allocate({tokens, d}, DType::kF64);
    attention.Forward(x, batch, seq, y, arena);
    return Dot(y, r);
  };
  objective();
  Tensor dx = Tensor::Zeros({tokens, d}, DType::kF64);
  attention.Backward(r, dx, arena);
  ExpectGradientMatchesFiniteDifferences("dx", x, dx, objective, rng);
  CheckAllParameters(params, objective, rng);
}

TEST(TransformerBlockGradientTest, BackwardMatchesFiniteDifferences) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const ModelConfig config = TinyConfig(FfnKind::kAoe);
  ParameterSet params(DType::kF64);
  TransformerBlock block(config, 0, &params, parallel::SingleProcessGroups());
  params.Allocate();
  params.Initialize(seed);
  const int64_t batch = 2, seq = 4, tokens = batch * seq, d = config.d_model;
  Tensor x = Tensor::Empty({tokens, d}, DType::kF64);
  Tensor r = Tensor::Empty({tokens, d}, DType::kF64);
  FillNormal(x, 1.0, rng);
  FillNormal(r, 1.0, rng);
  ActivationArena arena;
  auto objective = [&] {
    arena.Reset();
    Tensor y = arena.Allocate({tokens, d}, DType::kF64);
    block.Forward(x, batch, seq, y, arena);
    return Dot(y, r) + block.ffn().aux_loss();
  };
  objective();
  Tensor dx = Tensor::Zeros({tokens, d}, DType::kF64);
  block.Backward(r, 1.0f, dx, arena);
  ExpectGradientMatchesFiniteDifferences("dx", x, dx, objective, rng);
  CheckAllParameters(params, objective, rng);
}

class ModelGradientTest : public ::testing::TestWithParam<FfnCase> {};

TEST_P(ModelGradientTest, LossGradientMatchesFiniteDifferences) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const ModelConfig config = CaseConfig(GetParam());
  GptModel model(config, Device::Cpu(), DType::kF64);
  model.parameters().Initialize(seed);
  RandomizeExpertBias(model.parameters(), rng);
  const int64_t batch = 2, seq = 6;
  Tensor tokens = Tensor::Empty({batch, seq}, DType::kI32);
  Tensor targets = Tensor::Empty({batch, seq}, DType::kI32);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(config.vocab_size) - 1);
  for (int64_t i = 0; i < batch * seq; ++i) {
    tokens.data<int32_t>()[i] = token(rng);
    targets.data<int32_t>()[i] = token(rng);
  }
  targets.data<int32_t>()[3] = -1;  // an ignored position takes no part in the mean
  ActivationArena arena;
  auto objective = [&] {
    const StepOutputs out = model.Forward(tokens, targets, arena);
    return out.loss + out.aux_loss;
  };
  const StepOutputs trained = model.ForwardBackward(tokens, targets, 1.0f, arena);
  const StepOutputs evaluated = model.Forward(tokens, targets, arena);
  EXPECT_EQ(trained.loss, evaluated.loss);
  EXPECT_EQ(trained.aux_loss, evaluated.aux_loss);
  if (config.is_moe()) {
    EXPECT_GT(trained.aux_loss, 0.0);
  }
  CheckAllParameters(model.parameters(), objective, rng);
}

INSTANTIATE_TEST_SUITE_P(AllKinds, ModelGradientTest, kFfnCases,
                         [](const auto& info) { return std::string(info.param.name); });

// The two AoE memory modes compute the same function and the same gradients: in f64 they differ
// only in summation order (dx sums its n·r-long reduction a block at a time, and dŴ_down's
// blocks are added into the gradient instead of accumulated by the GEMM), so every output
// agrees to a few f64 ulps of its magnitude. Bound: |Δ| ≤ 1e-12 · (1 + max |value|).
TEST(AoeMemoryModesTest, BlockwiseEqualsKeepAllInF64) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  ModelConfig config = TinyConfig(FfnKind::kAoe);
  config.n_experts = 7;
  config.top_k = 3;
  config.capacity_factor = 0.0;
  const int64_t tokens = 19, d = config.d_model;
  std::mt19937_64 rng(seed);
  Tensor x = Tensor::Empty({tokens, d}, DType::kF64);
  Tensor dy = Tensor::Empty({tokens, d}, DType::kF64);
  FillNormal(x, 1.0, rng);
  FillNormal(dy, 1.0, rng);

  struct Run {
    std::vector<double> y, dx;
    std::vector<std::vector<double>> grads;
    double aux = 0.0;
  };
  auto run = [&](AoeMemory memory, int64_t block) {
    ModelConfig c = config;
    c.aoe_memory = memory;
    c.aoe_score_block = block;
    ParameterSet params(DType::kF64);
    std::unique_ptr<FeedForward> ffn =
        MakeFeedForward(c, 0, &params, parallel::SingleProcessGroups());
    params.Allocate();
    params.Initialize(seed);
    ActivationArena arena;
    Tensor y = arena.Allocate({tokens, d}, DType::kF64);
    ffn->Forward(x, y, arena);
    Tensor dx = Tensor::Zeros({tokens, d}, DType::kF64);
    ffn->Backward(dy, 1.0, dx, arena);
    Run out;
    out.y.assign(y.data<double>(), y.data<double>() + y.numel());
    out.dx.assign(dx.data<double>(), dx.data<double>() + dx.numel());
    for (Parameter& p : params.all()) {
      out.grads.emplace_back(p.grad.data<double>(), p.grad.data<double>() + p.grad.numel());
    }
    out.aux = ffn->aux_loss();
    return out;
  };
  auto expect_close = [](const std::vector<double>& got, const std::vector<double>& want,
                         const std::string& what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    double scale = 0.0;
    for (double v : want) scale = std::max(scale, std::abs(v));
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], want[i], 1e-12 * (1.0 + scale)) << what << "[" << i << "]";
    }
  };
  const Run keep_all = run(AoeMemory::kKeepAll, 0);
  for (int64_t block : {1, 3, 7}) {
    SCOPED_TRACE("block " + std::to_string(block));
    const Run blockwise = run(AoeMemory::kBlockwise, block);
    expect_close(blockwise.y, keep_all.y, "y");
    expect_close(blockwise.dx, keep_all.dx, "dx");
    EXPECT_NEAR(blockwise.aux, keep_all.aux, 1e-14);
    ASSERT_EQ(blockwise.grads.size(), keep_all.grads.size());
    for (size_t p = 0; p < keep_all.grads.size(); ++p) {
      expect_close(blockwise.grads[p], keep_all.grads[p], "grad " + std::to_string(p));
    }
  }
}

}  // namespace
}  // namespace aoetron
