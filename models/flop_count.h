// FLOP accounting: how much arithmetic one trained token costs, as a function of the model's
// shape alone (so it is the same for every parallel layout, kernel and machine).
//
// Convention (Kaplan et al. 2020, PaLM appendix B, llm.c): a multiply-add is 2 FLOPs; a matmul
// with an [in, out] weight costs 2·in·out FLOPs per token forward and twice that backward (one
// product for the input gradient, one for the weight gradient), so 6·in·out per trained token.
// Hence
//
//   training FLOPs per token = 6 · (active matmul parameters) + 6 · L · d · T
//
// Active matmul parameters, per layer:
//   attention     4·d²              (w_qkv d·3d, w_o d·d)
//   dense FFN     3·d·d_ffn         (w_g, w_p d·d_ffn; w_o d_ffn·d)
//   router MoE    d·n               (router, every expert scored)
//               + K · 3·d·w         (the K selected experts of width w = d_expert)
//               + 3·d·S·d_shared    (the shared experts, if any)
//   AoE           d·n·r             (Ŵ_down: ONE product for all n experts, selected or not)
//               + K · (r·d_wide + d·d_wide + d_wide·d)   (w_up, w_p, w_o of the K selected)
//               + 3·d·S·d_shared
// n and K are the routed experts the layers see (granularity applied: n·G, k·G).
// plus the LM head d·V once. Not counted: the embedding lookup (a gather, no arithmetic),
// norms, activations, softmax, RoPE, top-K, the loss (all O(d) per token, < 1% here).
//
// Attention scores and values: for a causal sequence of length T, query t meets t+1 keys, so
// QKᵀ costs Σ_t 2·d·(t+1) = d·T·(T+1) FLOPs per layer and sequence forward, and the same again
// for softmax·V: 2·d·(T+1) per token forward, 6·d·(T+1) trained. We count 6·L·d·T (dropping
// the +1, i.e. using T² for the causal triangle), which is exactly llm.c's 6·L·C·T term, so our
// model-FLOP numbers compare directly with llm.c's and nanoGPT's halved-for-causality figures.
// T is model.seq_len: the trainer always trains on full-length sequences.
//
// These are *model* FLOPs (useful work, the MFU convention): a kernel that computes the full
// T×T score matrix and masks half does more arithmetic than is counted here.
#pragma once

#include <cstdint>

#include "models/model_config.h"

namespace aoetron {

// Per-token training FLOPs, split by where they go. Every term is already ×6 (fwd + bwd).
struct TrainingFlopsPerToken {
  int64_t attention_projections = 0;  // 6·L·4d²
  int64_t attention_scores = 0;       // 6·L·d·T
  int64_t expert_scoring = 0;  // 6·L·d·n (router) or 6·L·d·n·r (AoE's Ŵ_down); 0 dense
  int64_t ffn = 0;             // 6·L·(dense MLP, or the K selected experts)
  int64_t lm_head = 0;         // 6·d·V
  int64_t total() const {
    return attention_projections + attention_scores + expert_scoring + ffn + lm_head;
  }
};

// Weights that multiply each token (the "active" parameters of the formula above); embedding
// and norm weights are excluded.
int64_t ActiveMatmulParameters(const ModelConfig& config);

TrainingFlopsPerToken CountTrainingFlopsPerToken(const ModelConfig& config);

// Training FLOPs of one optimizer step that trains `tokens` tokens.
double TrainingFlopsPerStep(const ModelConfig& config, int64_t tokens);

}  // namespace aoetron
