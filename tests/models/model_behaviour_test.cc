// Properties of the model beyond single gradients: AoE's gradient routing (AOE.md "Gradient
// flow"), parameter matching, determinism, and learning (overfitting one batch).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/arena.h"
#include "core/ops/elementwise.h"
#include "core/optim/adamw.h"
#include "models/feed_forward.h"
#include "models/gpt_model.h"

namespace aoetron {
namespace {

ModelConfig TinyAoe() {
  ModelConfig c;
  c.vocab_size = 32;
  c.d_model = 32;
  c.n_layers = 2;
  c.n_heads = 2;
  c.seq_len = 16;
  c.d_ffn = 64;
  c.ffn = FfnKind::kAoe;
  c.n_experts = 4;
  c.top_k = 2;
  c.d_low = 8;
  return c;
}

void FillTokens(Tensor& t, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(vocab) - 1);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int32_t>()[i] = token(rng);
}

TEST(ModelConfigTest, DWideMatchesThePapersParameterMatching) {
  ModelConfig small;
  small.d_model = 768;
  small.d_ffn = 3072;
  small.d_low = 256;
  EXPECT_EQ(small.ResolvedDWide(), 3840);  // exact in the paper
  ModelConfig four_b;
  four_b.d_model = 1280;
  four_b.d_ffn = 5120;
  four_b.d_low = 400;
  // 6469.2 (the paper used 6470), rounded to the nearest multiple of 64 that layouts split.
  EXPECT_NEAR(four_b.ParameterMatchedDWide(), 6469.2, 0.05);
  EXPECT_EQ(four_b.ResolvedDWide(), 6464);
  four_b.d_wide = 6470;
  EXPECT_EQ(four_b.ResolvedDWide(), 6470);  // explicit setting wins, unrounded
}

TEST(ModelConfigTest, DerivedWidthsAreMultiplesThatLayoutsSplit) {
  ModelConfig bench;  // configs/bench_aoe_small.textproto: raw 1336.9, not divisible by 2
  bench.d_model = 256;
  bench.d_ffn = 1024;
  bench.d_low = 64;
  bench.n_heads = 8;
  EXPECT_NEAR(bench.ParameterMatchedDWide(), 1336.9, 0.05);
  EXPECT_EQ(bench.ResolvedDWide(), 1344);
  for (int tp : {1, 2, 4, 8}) EXPECT_TRUE(ValidateParallelLayout(bench, tp, 1).ok()) << tp;
  EXPECT_EQ(RoundExpertWidth(20.4), 24);  // below 64: multiples of 8
  EXPECT_EQ(RoundExpertWidth(5.0), 8);    // never below 8
  EXPECT_EQ(RoundExpertWidth(95.0), 64);  // from 64: multiples of 64
  EXPECT_EQ(RoundExpertWidth(96.0), 128);
  // Fine-grained: matched to the routed expert's own width.
  bench.d_expert = 256;  // granularity 4
  EXPECT_NEAR(bench.ParameterMatchedDWide(), (3.0 * 256 * 256 - 64 * 256) / (64 + 512), 1e-9);
  EXPECT_EQ(bench.ResolvedDWide(), 320);  // 312.9
}

TEST(ModelConfigTest, InconsistentShapesAreRejectedByName) {
  ModelConfig c = TinyAoe();
  c.top_k = 5;
  EXPECT_NE(ValidateModelConfig(c).message().find("model.top_k"), std::string::npos);
  c = TinyAoe();
  c.n_heads = 3;
  EXPECT_NE(ValidateModelConfig(c).message().find("model.n_heads"), std::string::npos);
  c = TinyAoe();
  c.d_low = 0;
  EXPECT_NE(ValidateModelConfig(c).message().find("model.d_low"), std::string::npos);
}

// With the aux loss off, an expert no token selected gets no gradient at all: neither its own
// weights nor its slice of Ŵ_down (the task loss stops at the top-K). With the aux loss on, P
// (softmax over all n norms) reaches every slice of Ŵ_down, but still not unselected experts'
// own weights.
TEST(AoeGradientFlowTest, UnselectedExpertsLearnOnlyThroughTheAuxLoss) {
  for (double aux : {0.0, 0.01}) {
    SCOPED_TRACE("aux_loss_coeff " + std::to_string(aux));
    ModelConfig c = TinyAoe();
    c.n_experts = 8;
    c.top_k = 1;
    c.aux_loss_coeff = aux;
    ParameterSet params;
    std::unique_ptr<FeedForward> ffn =
        MakeFeedForward(c, 0, &params, parallel::SingleProcessGroups());
    params.Allocate();
    params.Initialize(7);
    const int64_t tokens = 3;  // at most 3 of 8 experts can be selected
    Tensor x = Tensor::Empty({tokens, c.d_model}, DType::kF32);
    std::mt19937_64 rng(11);
    std::normal_distribution<float> normal;
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = normal(rng);
    ActivationArena arena;
    Tensor y = arena.Allocate({tokens, c.d_model});
    ffn->Forward(x, y, arena);
    Tensor dy = arena.Allocate({tokens, c.d_model});
    ops::Fill(dy, 1.0);
    Tensor dx = Tensor::Zeros({tokens, c.d_model}, DType::kF32);
    ffn->Backward(dy, 1.0f, dx, arena);

    const std::vector<int64_t>& counts = ffn->stats()->tokens_per_expert;
    const Parameter* w_down = params.Find("layers.0.ffn.w_down");
    ASSERT_NE(w_down, nullptr);
    int unselected = 0;
    for (int64_t e = 0; e < c.n_experts; ++e) {
      const std::string prefix = "layers.0.ffn.experts." + std::to_string(e);
      const double own = ops::SumSquares(params.Find(prefix + ".w_up")->grad) +
                         ops::SumSquares(params.Find(prefix + ".w_p")->grad) +
                         ops::SumSquares(params.Find(prefix + ".w_o")->grad);
      double slice = 0.0;  // Σ over W_down's columns e·r … (e+1)·r − 1
      for (int64_t row = 0; row < c.d_model; ++row) {
        for (int64_t k = e * c.d_low; k < (e + 1) * c.d_low; ++k) {
          const double g = w_down->grad.data<float>()[row * c.n_experts * c.d_low + k];
          slice += g * g;
        }
      }
      if (counts[e] > 0) {
        EXPECT_GT(own, 0.0) << "selected expert " << e;
        EXPECT_GT(slice, 0.0) << "selected expert " << e;
        continue;
      }
      ++unselected;
      EXPECT_EQ(own, 0.0) << "unselected expert " << e;
      if (aux == 0.0) {
        EXPECT_EQ(slice, 0.0) << "unselected expert " << e;
      } else {
        EXPECT_GT(slice, 0.0) << "unselected expert " << e;
      }
    }
    EXPECT_GE(unselected, 5);
  }
}

// Aux-loss-free balancing: the bias moves by ±rate once per UpdateExpertBias, by the pairs routed
// over every Backward since the last update (a Forward alone, an evaluation, does not count), and
// never receives a gradient.
TEST(ExpertBiasTest, MovesOncePerStepByTheStepsLoad) {
  ModelConfig c = TinyAoe();
  c.ffn = FfnKind::kRouterMoe;
  c.n_experts = 8;
  c.expert_bias_rate = 0.125;  // exact in f32: the expected values below are exact
  ParameterSet params;
  std::unique_ptr<FeedForward> ffn =
      MakeFeedForward(c, 0, &params, parallel::SingleProcessGroups());
  params.Allocate();
  params.Initialize(3);
  Parameter* bias = params.Find("layers.0.ffn.expert_bias");
  ASSERT_NE(bias, nullptr);
  EXPECT_FALSE(bias->trainable);
  EXPECT_FALSE(bias->weight_decay);
  const int64_t tokens = 7;
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal;
  ActivationArena arena;
  std::vector<int64_t> load(c.n_experts, 0);
  std::vector<float> expected(c.n_experts, 0.0f);
  for (int step = 0; step < 3; ++step) {
    std::fill(load.begin(), load.end(), 0);
    for (int micro_batch = 0; micro_batch < 2; ++micro_batch) {
      Tensor x = Tensor::Empty({tokens, c.d_model}, DType::kF32);
      for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = normal(rng);
      arena.Reset();
      Tensor y = arena.Allocate({tokens, c.d_model});
      ffn->Forward(x, y, arena);
      for (int64_t e = 0; e < c.n_experts; ++e) load[e] += ffn->stats()->tokens_per_expert[e];
      Tensor dy = arena.Allocate({tokens, c.d_model});
      ops::Fill(dy, 1.0);
      Tensor dx = Tensor::Zeros({tokens, c.d_model}, DType::kF32);
      ffn->Backward(dy, 1.0, dx, arena);
    }
    // An evaluation forward in between: not part of the step's load.
    arena.Reset();
    Tensor y = arena.Allocate({tokens, c.d_model});
    ffn->Forward(Tensor::Zeros({tokens, c.d_model}, DType::kF32), y, arena);
    ffn->UpdateExpertBias();
    const double mean = 2.0 * tokens * c.top_k / static_cast<double>(c.n_experts);
    for (int64_t e = 0; e < c.n_experts; ++e) {
      expected[e] += load[e] < mean ? 0.125f : load[e] > mean ? -0.125f : 0.0f;
      EXPECT_EQ(bias->master.data<float>()[e], expected[e]) << "step " << step << " expert " << e;
    }
    EXPECT_EQ(ops::SumSquares(bias->grad), 0.0);
  }
}

// KV-cache decoding gives the training forward's numbers: the cross-entropy of each position's
// next token, from logits decoded one token per call after a prompt of 3 in one call, averages
// to Forward's loss on the same tokens (f64: agreement to summation order, ~1e-12).
TEST(KvCacheDecodeTest, StepwiseLogitsGiveTheForwardLoss) {
  for (FfnKind kind : {FfnKind::kDense, FfnKind::kRouterMoe, FfnKind::kAoe}) {
    SCOPED_TRACE(FfnKindName(kind));
    ModelConfig c = TinyAoe();
    c.ffn = kind;
    c.expert_bias_rate = kind == FfnKind::kDense ? 0.0 : 0.01;
    c.n_shared_experts = kind == FfnKind::kDense ? 0 : 1;
    GptModel model(c, Device::Cpu(), DType::kF64);
    model.parameters().Initialize(5);
    const int64_t batch = 2, seq = 9, prompt = 3;
    Tensor tokens = Tensor::Empty({batch, seq}, DType::kI32);
    FillTokens(tokens, c.vocab_size, 17);
    Tensor targets = Tensor::Empty({batch, seq}, DType::kI32);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t t = 0; t < seq; ++t) {
        targets.data<int32_t>()[b * seq + t] =
            t + 1 < seq ? tokens.data<int32_t>()[b * seq + t + 1] : -1;
      }
    }
    ActivationArena arena;
    GptModel::KvCache cache = model.NewKvCache(batch, seq);
    double sum = 0.0;
    int64_t counted = 0;
    auto score = [&](const Tensor& logits, int64_t position) {  // CE of the next token
      if (position + 1 >= seq) return;
      for (int64_t b = 0; b < batch; ++b) {
        const float* row = logits.data<float>() + b * c.vocab_size;
        double top = row[0];
        for (int64_t v = 1; v < c.vocab_size; ++v) top = std::max(top, double{row[v]});
        double z = 0.0;
        for (int64_t v = 0; v < c.vocab_size; ++v) z += std::exp(row[v] - top);
        sum += top + std::log(z) - row[targets.data<int32_t>()[b * seq + position]];
        ++counted;
      }
    };
    Tensor head = Tensor::Empty({batch, prompt}, DType::kI32);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t t = 0; t < prompt; ++t) {
        head.data<int32_t>()[b * prompt + t] = tokens.data<int32_t>()[b * seq + t];
      }
    }
    score(model.Decode(head, cache, arena), prompt - 1);
    for (int64_t t = prompt; t < seq; ++t) {
      Tensor one = Tensor::Empty({batch, 1}, DType::kI32);
      for (int64_t b = 0; b < batch; ++b) {
        one.data<int32_t>()[b] = tokens.data<int32_t>()[b * seq + t];
      }
      score(model.Decode(one, cache, arena), t);
    }
    EXPECT_EQ(cache.length, seq);
    // Only the positions after the prompt are scored stepwise; the forward's loss over the same
    // positions is recomputed from scratch below with the prompt's targets ignored.
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t t = 0; t < prompt - 1; ++t) targets.data<int32_t>()[b * seq + t] = -1;
    }
    const double forward_suffix = model.Forward(tokens, targets, arena).loss;
    // Decode rounds the f64 logits to f32 (what the sampler takes): each by ≤ 2⁻²⁴ relative,
    // so each CE term = lse − logit moves by ≤ ~2·max|logit|·2⁻²⁴ ≈ 1e-7 here (|logit| < 1),
    // against CE ≈ 3.5; 1e-6 relative leaves a factor of ~30 over that bound.
    EXPECT_NEAR(sum / static_cast<double>(counted), forward_suffix, 1e-6 * forward_suffix);
  }
}

TEST(ModelDeterminismTest, SameSeedSameBits) {
  for (FfnKind kind : {FfnKind::kDense, FfnKind::kRouterMoe, FfnKind::kAoe}) {
    ModelConfig c = TinyAoe();
    c.ffn = kind;
    Tensor tokens = Tensor::Empty({2, 16}, DType::kI32), targets = tokens;
    targets = Tensor::Empty({2, 16}, DType::kI32);
    FillTokens(tokens, c.vocab_size, 1);
    FillTokens(targets, c.vocab_size, 2);
    std::vector<StepOutputs> outs;
    std::vector<std::vector<float>> grads;
    for (int run = 0; run < 2; ++run) {
      GptModel model(c);
      model.parameters().Initialize(42);
      ActivationArena arena;
      outs.push_back(model.ForwardBackward(tokens, targets, 1.0f, arena));
      const Tensor& g = model.parameters().flat_grads();
      grads.emplace_back(g.data<float>(), g.data<float>() + g.numel());
    }
    EXPECT_EQ(outs[0].loss, outs[1].loss) << FfnKindName(kind);
    EXPECT_EQ(outs[0].aux_loss, outs[1].aux_loss) << FfnKindName(kind);
    EXPECT_EQ(0, std::memcmp(grads[0].data(), grads[1].data(), grads[0].size() * sizeof(float)))
        << FfnKindName(kind);
  }
}

TEST(ModelLearningTest, TinyAoeOverfitsOneRepeatedBatch) {
  ModelConfig c = TinyAoe();
  GptModel model(c);
  model.parameters().Initialize(3);
  Tensor tokens = Tensor::Empty({4, 16}, DType::kI32);
  Tensor targets = Tensor::Empty({4, 16}, DType::kI32);
  FillTokens(tokens, c.vocab_size, 5);
  FillTokens(targets, c.vocab_size, 6);
  ParameterSet& params = model.parameters();
  std::vector<Tensor> m, v;
  for (Parameter& p : params.all()) {
    m.push_back(Tensor::Zeros(p.value.shape(), DType::kF32));
    v.push_back(Tensor::Zeros(p.value.shape(), DType::kF32));
  }
  AdamWHyperParams hp;
  hp.weight_decay = 0.0f;
  ActivationArena arena;
  double first = 0.0, last = 0.0;
  for (int step = 1; step <= 300; ++step) {
    params.ZeroGrads();
    const StepOutputs out = model.ForwardBackward(tokens, targets, 1.0f, arena);
    ASSERT_TRUE(std::isfinite(out.loss)) << "step " << step;
    if (step == 1) first = out.loss;
    last = out.loss;
    if (last < 0.1) break;
    for (int i = 0; i < params.size(); ++i) {
      AdamWUpdate(params[i].value, params[i].grad, m[i], v[i], 1e-2f, 0.0f, hp, step);
    }
  }
  EXPECT_NEAR(first, std::log(static_cast<double>(c.vocab_size)), 0.5);  // starts near uniform
  EXPECT_LT(last, 0.1);
}

}  // namespace
}  // namespace aoetron
