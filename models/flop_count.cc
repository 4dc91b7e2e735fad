#include "models/flop_count.h"

namespace aoetron {
namespace {

// Matmul parameters of one layer's feed-forward block that every token multiplies.
struct FfnActiveParameters {
  int64_t scoring = 0;  // router or AoE's Ŵ_down
  int64_t experts = 0;  // dense MLP or the K selected experts
};

FfnActiveParameters FfnParameters(const ModelConfig& c) {
  const int64_t d = c.d_model;
  FfnActiveParameters p;
  switch (c.ffn) {
    case FfnKind::kDense:
      p.experts = 3 * d * c.d_ffn;
      break;
    case FfnKind::kRouterMoe:
      p.scoring = d * c.n_experts;
      p.experts = c.top_k * 3 * d * c.SwiGluExpertWidth() + 3 * d * c.SharedWidth();
      break;
    case FfnKind::kAoe: {
      const int64_t r = c.d_low, wide = c.ResolvedDWide();
      p.scoring = d * c.n_experts * r;
      p.experts = c.top_k * (r * wide + d * wide + wide * d) + 3 * d * c.SharedWidth();
      break;
    }
  }
  return p;
}

}  // namespace

int64_t ActiveMatmulParameters(const ModelConfig& c) {
  const FfnActiveParameters ffn = FfnParameters(c);
  const int64_t per_layer = 4 * c.d_model * c.d_model + ffn.scoring + ffn.experts;
  return c.n_layers * per_layer + c.d_model * c.vocab_size;
}

TrainingFlopsPerToken CountTrainingFlopsPerToken(const ModelConfig& c) {
  const FfnActiveParameters ffn = FfnParameters(c);
  const int64_t layers = c.n_layers, d = c.d_model;
  TrainingFlopsPerToken flops;
  flops.attention_projections = 6 * layers * 4 * d * d;
  flops.attention_scores = 6 * layers * d * c.seq_len;
  flops.expert_scoring = 6 * layers * ffn.scoring;
  flops.ffn = 6 * layers * ffn.experts;
  flops.lm_head = 6 * d * c.vocab_size;
  return flops;
}

double TrainingFlopsPerStep(const ModelConfig& config, int64_t tokens) {
  return static_cast<double>(CountTrainingFlopsPerToken(config).total()) *
         static_cast<double>(tokens);
}

}  // namespace aoetron
