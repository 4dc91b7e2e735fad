// The matching rule (launcher/study/width_matching.h): a derived width reproduces the target
// active parameters or FLOPs per token within one rounding step, across MoE and AoE shapes; and
// the plan's total parameter count equals the model's own.
#include <gtest/gtest.h>

#include <cstdlib>

#include "launcher/study/model_size.h"
#include "launcher/study/width_matching.h"
#include "models/flop_count.h"
#include "models/gpt_model.h"

namespace aoetron::study {
namespace {

// The bench shape (configs/bench_*_small.textproto) as the layers see it.
ModelConfig BenchShape(FfnKind ffn, int64_t n, int64_t granularity, int64_t k, int64_t r,
                       int64_t shared) {
  ModelConfig m;
  m.vocab_size = 8192;
  m.d_model = 256;
  m.n_layers = 4;
  m.n_heads = 4;
  m.seq_len = 256;
  m.d_ffn = 1024;
  m.ffn = ffn;
  m.n_experts = n * granularity;
  m.top_k = k * granularity;
  m.d_expert = m.d_ffn / granularity;
  m.d_low = r;
  m.n_shared_experts = shared;
  return m;
}

TEST(MatchingRuleTest, DerivedWidthHitsTheTargetWithinOneRoundingStep) {
  ModelConfig dense = BenchShape(FfnKind::kDense, 1, 1, 1, 64, 0);
  for (MatchedQuantity quantity : {MatchedQuantity::kActiveParams, MatchedQuantity::kActiveFlops}) {
    const int64_t target = MatchedQuantityOf(dense, quantity);
    int checked = 0;
    for (FfnKind ffn : {FfnKind::kRouterMoe, FfnKind::kAoe}) {
      for (int64_t n : {4, 8, 32, 64}) {
        for (int64_t g : {1, 2, 4}) {
          for (int64_t k : {1, 2}) {
            for (int64_t shared : {0, 1}) {
              const ModelConfig model = BenchShape(ffn, n, g, k, 32, shared);
              const std::string what = FfnKindName(ffn) + " n" + std::to_string(n) + " G" +
                                       std::to_string(g) + " K" + std::to_string(k) + " S" +
                                       std::to_string(shared) + " " + MatchedQuantityName(quantity);
              absl::StatusOr<MatchedWidth> matched = DeriveMatchedWidth(model, quantity, target);
              if (!matched.ok()) {
                // Only when the rest of the model alone is over the target: check that it is.
                ModelConfig narrowest = model;
                SetFreeWidth(1, &narrowest);
                EXPECT_GT(MatchedQuantityOf(narrowest, quantity), target) << what;
                continue;
              }
              ++checked;
              // A width layouts split: a multiple of 64 from 64 on, else of 8.
              EXPECT_EQ(matched->width % (matched->width >= 64 ? 64 : 8), 0) << what;
              EXPECT_EQ(matched->width, RoundExpertWidth(matched->exact)) << what;
              // The model with that width has the quantity the rule reports ...
              ModelConfig derived = model;
              SetFreeWidth(matched->width, &derived);
              EXPECT_EQ(MatchedQuantityOf(derived, quantity), matched->achieved) << what;
              // ... within one rounding step of the target, and the exact width hits it.
              EXPECT_LE(std::llabs(matched->achieved - target), matched->quantity_per_step)
                  << what << ": width " << matched->width << " (exact " << matched->exact << ")";
              const double slope = static_cast<double>(matched->quantity_per_step) /
                                   (matched->exact >= 64 ? 64.0 : 8.0);
              EXPECT_NEAR(static_cast<double>(matched->achieved) +
                              slope * (matched->exact - static_cast<double>(matched->width)),
                          static_cast<double>(target), 1.0)
                  << what;
            }
          }
        }
      }
    }
    EXPECT_GT(checked, 60);
  }
}

TEST(MatchingRuleTest, AoeScoringIsChargedWhenHoldingFlops) {
  // AoE scores every expert (6·L·d·n·r FLOPs per token): at more experts its width must shrink
  // to keep the FLOPs per token, and at enough experts no width is left.
  const ModelConfig dense = BenchShape(FfnKind::kDense, 1, 1, 1, 64, 0);
  const int64_t target = MatchedQuantityOf(dense, MatchedQuantity::kActiveFlops);
  absl::StatusOr<MatchedWidth> few = DeriveMatchedWidth(BenchShape(FfnKind::kAoe, 8, 1, 2, 64, 0),
                                                        MatchedQuantity::kActiveFlops, target);
  absl::StatusOr<MatchedWidth> many = DeriveMatchedWidth(BenchShape(FfnKind::kAoe, 32, 1, 2, 64, 0),
                                                         MatchedQuantity::kActiveFlops, target);
  ASSERT_TRUE(few.ok()) << few.status();
  ASSERT_TRUE(many.ok()) << many.status();
  EXPECT_LT(many->exact, few->exact);
  // Scoring alone, 6·L·d·n·r with n = 1024, is far above a dense FFN's FLOPs.
  absl::StatusOr<MatchedWidth> impossible = DeriveMatchedWidth(
      BenchShape(FfnKind::kAoe, 1024, 1, 2, 64, 0), MatchedQuantity::kActiveFlops, target);
  ASSERT_FALSE(impossible.ok());
  EXPECT_NE(impossible.status().message().find("model.d_wide"), std::string::npos)
      << impossible.status();
}

TEST(ModelSizeTest, TotalParametersEqualTheModelsOwn) {
  for (FfnKind ffn : {FfnKind::kDense, FfnKind::kRouterMoe, FfnKind::kAoe}) {
    for (int64_t shared : {0, 1}) {
      for (double bias : {0.0, 1e-3}) {
        ModelConfig m;
        m.vocab_size = 64;
        m.d_model = 32;
        m.n_layers = 2;
        m.n_heads = 2;
        m.seq_len = 16;
        m.d_ffn = 64;
        m.ffn = ffn;
        m.n_experts = 8;
        m.top_k = 2;
        m.d_expert = 32;
        m.d_low = 8;
        m.n_shared_experts = shared;
        m.expert_bias_rate = bias;
        GptModel model(m);
        EXPECT_EQ(TotalParameters(m), model.parameters().num_elements())
            << FfnKindName(ffn) << " shared " << shared << " bias " << bias;
      }
    }
  }
}

}  // namespace
}  // namespace aoetron::study
