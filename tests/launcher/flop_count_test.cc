// FLOP accounting against counts done by hand, and against the parameters the model really has.
#include "models/flop_count.h"

#include <gtest/gtest.h>

#include "models/gpt_model.h"

namespace aoetron {
namespace {

// d = 8, L = 2, V = 16, T = 4, n = 4 experts, K = 2, r = 2, d_wide = 6, d_ffn = 10.
ModelConfig HandCountedConfig(FfnKind ffn) {
  ModelConfig c;
  c.vocab_size = 16;
  c.d_model = 8;
  c.n_layers = 2;
  c.n_heads = 2;
  c.seq_len = 4;
  c.d_ffn = 10;
  c.ffn = ffn;
  c.n_experts = 4;
  c.top_k = 2;
  c.d_low = 2;
  c.d_wide = 6;
  return c;
}

// Per layer: attention 4·8² = 256. LM head 8·16 = 128. Attention scores 6·L·d·T = 6·2·8·4 = 384.
TEST(FlopCountTest, AoeByHand) {
  const ModelConfig c = HandCountedConfig(FfnKind::kAoe);
  // Ŵ_down d·n·r = 8·4·2 = 64 (all experts); K·(r·w + d·w + w·d) = 2·(12 + 48 + 48) = 216.
  EXPECT_EQ(ActiveMatmulParameters(c), 2 * (256 + 64 + 216) + 128);  // 1200
  const TrainingFlopsPerToken flops = CountTrainingFlopsPerToken(c);
  EXPECT_EQ(flops.attention_projections, 6 * 2 * 256);
  EXPECT_EQ(flops.attention_scores, 384);
  EXPECT_EQ(flops.expert_scoring, 6 * 2 * 64);
  EXPECT_EQ(flops.ffn, 6 * 2 * 216);
  EXPECT_EQ(flops.lm_head, 6 * 128);
  EXPECT_EQ(flops.total(), 6 * 1200 + 384);  // 7584
  EXPECT_DOUBLE_EQ(TrainingFlopsPerStep(c, 1000), 7584.0 * 1000);
}

TEST(FlopCountTest, RouterMoeByHand) {
  const ModelConfig c = HandCountedConfig(FfnKind::kRouterMoe);
  // Router d·n = 32; K·3·d·d_ffn = 2·240 = 480.
  EXPECT_EQ(ActiveMatmulParameters(c), 2 * (256 + 32 + 480) + 128);  // 1664
  EXPECT_EQ(CountTrainingFlopsPerToken(c).expert_scoring, 6 * 2 * 32);
  EXPECT_EQ(CountTrainingFlopsPerToken(c).total(), 6 * 1664 + 384);  // 10368
}

TEST(FlopCountTest, DenseByHand) {
  const ModelConfig c = HandCountedConfig(FfnKind::kDense);
  EXPECT_EQ(ActiveMatmulParameters(c), 2 * (256 + 240) + 128);  // 1120
  EXPECT_EQ(CountTrainingFlopsPerToken(c).expert_scoring, 0);
  EXPECT_EQ(CountTrainingFlopsPerToken(c).total(), 6 * 1120 + 384);  // 7104
}

// AoE pays for every expert's W_down slice, selected or not: one more expert adds 6·L·d·r
// FLOPs per token even at the same K; a router MoE adds only 6·L·d (the router column).
TEST(FlopCountTest, MoreExpertsAtTheSameTopKCostOnlyScoring) {
  ModelConfig aoe = HandCountedConfig(FfnKind::kAoe);
  const int64_t before = CountTrainingFlopsPerToken(aoe).total();
  aoe.n_experts = 5;
  EXPECT_EQ(CountTrainingFlopsPerToken(aoe).total() - before, 6 * 2 * 8 * 2);
  ModelConfig moe = HandCountedConfig(FfnKind::kRouterMoe);
  const int64_t moe_before = CountTrainingFlopsPerToken(moe).total();
  moe.n_experts = 5;
  EXPECT_EQ(CountTrainingFlopsPerToken(moe).total() - moe_before, 6 * 2 * 8);
}

// With every expert selected (K = n), the active matmul parameters are exactly the model's
// parameters minus the embedding table and the norm weights: the formula counts the weights
// the model really has, no more, no fewer.
// Fine-grained experts (granularity 2, as the launcher resolves it) keep the active count; shared
// experts add 3·d·S·d_shared per layer; the expert bias is state, not a matmul weight.
TEST(FlopCountTest, GranularityKeepsAndSharedExpertsAddActiveParameters) {
  ModelConfig coarse = HandCountedConfig(FfnKind::kRouterMoe);
  ModelConfig fine = coarse;
  fine.n_experts *= 2;
  fine.top_k *= 2;
  fine.d_expert = fine.d_ffn / 2;
  // Router d·2n = 64 instead of 32 (+32 per layer); experts 4·3·8·5 = 480 as before.
  EXPECT_EQ(ActiveMatmulParameters(fine), ActiveMatmulParameters(coarse) + 2 * 32);
  ModelConfig shared = coarse;
  shared.n_shared_experts = 2;
  shared.d_shared = 3;
  shared.expert_bias_rate = 0.01;
  EXPECT_EQ(ActiveMatmulParameters(shared), ActiveMatmulParameters(coarse) + 2 * 3 * 8 * 6);
  // Every parameter but embedding, norms and the biases is a matmul weight every token multiplies
  // when every expert is selected.
  shared.top_k = shared.n_experts;
  GptModel model(shared);
  const int64_t not_matmul = shared.vocab_size * shared.d_model +
                             (2 * shared.n_layers + 1) * shared.d_model +
                             shared.n_layers * shared.n_experts;
  EXPECT_EQ(ActiveMatmulParameters(shared), model.parameters().num_elements() - not_matmul);
}

TEST(FlopCountTest, ActiveParametersMatchTheModelWhenEveryExpertIsSelected) {
  for (FfnKind ffn : {FfnKind::kDense, FfnKind::kRouterMoe, FfnKind::kAoe}) {
    SCOPED_TRACE(FfnKindName(ffn));
    ModelConfig c = HandCountedConfig(ffn);
    c.top_k = c.n_experts;
    c.d_wide = 0;  // derived, as configs usually leave it
    GptModel model(c);
    const int64_t embedding = c.vocab_size * c.d_model;
    const int64_t norms = (2 * c.n_layers + 1) * c.d_model;
    EXPECT_EQ(ActiveMatmulParameters(c), model.parameters().num_elements() - embedding - norms);
  }
}

TEST(FlopCountTest, PaperSmallAoeReconcilesWithThePapersActiveCount) {
  // 12 layers, d 768, d_ffn 3072, n 8, K 2, r 256 → d_wide 3840, vocab 32000, T 2048.
  ModelConfig c;
  c.vocab_size = 32000;
  c.d_model = 768;
  c.n_layers = 12;
  c.n_heads = 12;
  c.seq_len = 2048;
  c.d_ffn = 3072;
  c.ffn = FfnKind::kAoe;
  c.n_experts = 8;
  c.top_k = 2;
  c.d_low = 256;
  // attention 12·4·768² = 28.3M, Ŵ_down 12·768·8·256 = 18.9M (all experts: every token
  // multiplies it), 2 experts 12·2·(256·3840 + 2·768·3840) = 165.2M, LM head 24.6M.
  const int64_t active = ActiveMatmulParameters(c);
  EXPECT_EQ(active, 236912640);
  // The paper's "247M active" counts the embedding table and only the K selected experts'
  // W_down slices; from ours: − (n − K)·L·d·r + V·d = 247.3M.
  const int64_t paper_style = active - (8 - 2) * 12 * 768 * 256 + 32000 * 768;
  EXPECT_NEAR(static_cast<double>(paper_style), 247e6, 0.5e6);
}

}  // namespace
}  // namespace aoetron
