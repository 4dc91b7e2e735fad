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
  int64_t d_ffn = 1024;   // dense width, and each router-MoE expert's width
  FfnKind ffn = FfnKind::kAoe;
  int64_t n_experts = 8;
  int64_t top_k = 2;
  int64_t d_low = 64;  // AoE's r
  int64_t d_wide = 0;  // AoE expert width; 0 = parameter-matched to a d_ffn expert (AOE.md Eq. 5)
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
  // d_wide if set, else round((3·d·d_ffn − r·d) / (r + 2·d)).
  int64_t ResolvedDWide() const;
  // Width of each expert's hidden layer: d_ffn for dense and router MoE, d_wide for AoE.
  int64_t ExpertWidth() const { return ffn == FfnKind::kAoe ? ResolvedDWide() : d_ffn; }
};

// Checks every field and their consistency. Errors name the field as the config file spells it
// ("model.d_model must be divisible by model.n_heads (256 vs 3)").
absl::Status ValidateModelConfig(const ModelConfig& config);

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
