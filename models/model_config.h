// The shape of a GPT-style decoder and of its feed-forward block. A plain struct so models/
// does not depend on the config schema; launcher/ fills it from the protobuf config.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace aoetron {

enum class FfnKind {
  kDense,      // one SwiGLU MLP of width d_ffn
  kRouterMoe,  // n SwiGLU experts of width d_ffn, top-K by a learned router
  kAoe,        // n AoE experts of width d_wide, top-K by the norms of their own low-rank gate
};

// How AoE turns the K selected norms into gate weights (AOE.md).
enum class AoeGateVariant {
  kPaper,    // softmax over the K selected norms (the paper, Algorithm 2) — the default
  kRelease,  // softmax over all n norms, not renormalised over the K (the authors' release)
};

// How a router MoE turns its logits into selection scores and gate weights (docs/models.md).
enum class RouterScore {
  kSoftmax,  // w = softmax(logits[I]) over the K; q = softmax(logits) over all n for the aux loss
  kSigmoid,  // s = σ(logits); w = s[I] / Σ_K s[I]; q = s / Σ_n s for the aux loss (DeepSeek-V3)
};

// What AoE keeps of C = x·Ŵ_down [N, n·r] between forward and backward (docs/models.md).
enum class AoeMemory {
  kKeepAll,    // all of C (T·n·r values per layer): no recompute
  kBlockwise,  // the norms [N, n] and the K selected C_i only; C recomputed a block at a time
};

struct ModelConfig {
  int64_t vocab_size = 8192;
  int64_t d_model = 256;
  int64_t n_layers = 4;
  int64_t n_heads = 4;
  int64_t seq_len = 256;  // longest sequence the model is trained on
  int64_t d_ffn = 1024;   // dense width; each routed SwiGLU expert's width unless d_expert
  FfnKind ffn = FfnKind::kAoe;
  // The routed experts as the layers see them: a config's granularity G is already applied
  // (launcher/config_conversion.h: n_experts = n·G, top_k = k·G, d_expert = d_ffn/G).
  int64_t n_experts = 8;
  int64_t top_k = 2;
  int64_t d_expert = 0;  // routed SwiGLU expert width; 0 = d_ffn
  int64_t d_low = 64;    // AoE's r
  int64_t d_wide = 0;  // AoE expert width; 0 = parameter-matched to a SwiGLU expert (AOE.md Eq. 5)
  // Shared experts: n_shared_experts always-on SwiGLU experts of width d_shared (0 = the routed
  // SwiGLU expert width), run as ONE SwiGLU of width n_shared_experts·d_shared.
  int64_t n_shared_experts = 0;
  int64_t d_shared = 0;
  RouterScore router_score = RouterScore::kSoftmax;  // router MoE only
  double z_loss_coeff = 0.0;      // coeff · mean_t logsumexp(scores_t)²; 0 = off
  double expert_bias_rate = 0.0;  // aux-loss-free balancing bias update rate; 0 = off
  AoeGateVariant aoe_gate = AoeGateVariant::kPaper;
  AoeMemory aoe_memory = AoeMemory::kKeepAll;
  // Experts per block of the blockwise scoring; 0 = automatic (AoeScoreBlock), > n is n.
  int64_t aoe_score_block = 0;
  double aux_loss_coeff = 0.01;  // α of the load-balancing loss; 0 disables it
  // Expert capacity factor cf: each expert keeps at most ceil(cf · T·K / n) pairs of a global
  // micro-batch of T tokens, the first ones in global token order; 0 = dropless (the default).
  // See docs/expert_parallel.md (drop policy).
  double capacity_factor = 0.0;
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  double init_std = 0.02;

  int64_t head_dim() const { return d_model / n_heads; }
  bool is_moe() const { return ffn != FfnKind::kDense; }
  // Width of a routed SwiGLU expert (router MoE), and what AoE's d_wide is matched to.
  int64_t SwiGluExpertWidth() const { return d_expert > 0 ? d_expert : d_ffn; }
  // AOE.md Eq. 5 unrounded: (3·d·w − r·d) / (r + 2·d), w = SwiGluExpertWidth().
  double ParameterMatchedDWide() const;
  // d_wide if set, else ParameterMatchedDWide() rounded by RoundExpertWidth.
  int64_t ResolvedDWide() const;
  // Width of each routed expert's hidden layer: SwiGluExpertWidth() for router MoE, d_wide for
  // AoE (d_ffn for dense).
  int64_t ExpertWidth() const {
    return ffn == FfnKind::kAoe     ? ResolvedDWide()
           : ffn == FfnKind::kDense ? d_ffn
                                    : SwiGluExpertWidth();
  }
  // Total width of the shared experts' one SwiGLU (0: none).
  int64_t SharedWidth() const {
    return n_shared_experts * (d_shared > 0 ? d_shared : SwiGluExpertWidth());
  }
  bool has_expert_bias() const { return is_moe() && expert_bias_rate > 0; }
};

// Checks every field and their consistency. Errors name the field as the config file spells it
// ("model.d_model must be divisible by model.n_heads (256 vs 3)").
absl::Status ValidateModelConfig(const ModelConfig& config);

// A derived expert width as layouts split it and GEMMs like it: the nearest multiple of 64 when
// `raw` ≥ 64, else the nearest multiple of 8 (at least 8). Every tp up to 8 divides the result.
int64_t RoundExpertWidth(double raw);

// Checks that a valid config can be laid out over `tp` tensor-parallel and `ep` expert-parallel
// ranks (launcher/ calls it with parallel.tp and parallel.ep before any work starts). Tensor
// parallelism splits attention heads, the vocabulary (embedding rows, LM-head columns) and every
// FFN/expert width in equal blocks; expert parallelism shards the experts. Errors name the fields:
// "model.n_heads (6) must be divisible by parallel.tp (4)".
absl::Status ValidateParallelLayout(const ModelConfig& config, int tp, int ep);

// Experts per block of AoE's blockwise scoring: `requested` clamped to [1, n_experts], or for
// requested = 0 the automatic choice, kAoeAutoBlockColumns / d_low experts (≥ 1): a block of
// C is then [N, ~512] — wide enough for an efficient GEMM, a few MiB of scratch at N = 2048.
inline constexpr int64_t kAoeAutoBlockColumns = 512;
int64_t AoeScoreBlock(int64_t n_experts, int64_t d_low, int64_t requested);

std::string FfnKindName(FfnKind kind);  // "dense", "moe", "aoe"

}  // namespace aoetron
