#include "models/model_config.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"

namespace aoetron {

double ModelConfig::ParameterMatchedDWide() const {
  // AOE.md Eq. 5: an AoE expert (W_down slice d·r, W_up r·d_wide, W_p d·d_wide, W_o d_wide·d)
  // has as many parameters as a SwiGLU expert of width w (3·d·w).
  const double d = static_cast<double>(d_model), r = static_cast<double>(d_low);
  return (3.0 * d * static_cast<double>(SwiGluExpertWidth()) - r * d) / (r + 2.0 * d);
}

int64_t ModelConfig::ResolvedDWide() const {
  return d_wide > 0 ? d_wide : RoundExpertWidth(ParameterMatchedDWide());
}

int64_t RoundExpertWidth(double raw) {
  const int64_t multiple = raw >= 64.0 ? 64 : 8;
  return std::max<int64_t>(8, std::llround(raw / static_cast<double>(multiple)) * multiple);
}

int64_t AoeScoreBlock(int64_t n_experts, int64_t d_low, int64_t requested) {
  if (requested <= 0) requested = std::max<int64_t>(1, kAoeAutoBlockColumns / d_low);
  return std::clamp<int64_t>(requested, 1, std::max<int64_t>(n_experts, 1));
}

std::string FfnKindName(FfnKind kind) {
  switch (kind) {
    case FfnKind::kDense:
      return "dense";
    case FfnKind::kRouterMoe:
      return "moe";
    case FfnKind::kAoe:
      return "aoe";
  }
  return "?";
}

absl::Status ValidateModelConfig(const ModelConfig& c) {
  auto positive = [](const char* field, int64_t value) -> absl::Status {
    if (value >= 1) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrFormat("%s must be ≥ 1 (got %d)", field, value));
  };
  for (auto [field, value] : {std::pair{"model.vocab_size", c.vocab_size},
                              {"model.d_model", c.d_model},
                              {"model.n_layers", c.n_layers},
                              {"model.n_heads", c.n_heads},
                              {"model.d_ffn", c.d_ffn}}) {
    if (absl::Status s = positive(field, value); !s.ok()) return s;
  }
  if (c.seq_len < 2) {
    return absl::InvalidArgumentError(
        absl::StrFormat("model.seq_len must be ≥ 2 (got %d)", c.seq_len));
  }
  if (c.d_model % c.n_heads != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "model.d_model must be divisible by model.n_heads (%d vs %d)", c.d_model, c.n_heads));
  }
  if (c.head_dim() % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "model.d_model / model.n_heads must be even for rotary embeddings (head_dim %d)",
        c.head_dim()));
  }
  if (c.vocab_size > (int64_t{1} << 31) - 1) {
    return absl::InvalidArgumentError("model.vocab_size must fit in int32");
  }
  if (c.rope_theta <= 0 || c.norm_eps <= 0 || c.init_std <= 0) {
    return absl::InvalidArgumentError(
        "model.rope_theta, model.norm_eps and model.init_std must be > 0");
  }
  for (auto [field, value] : {std::pair{"model.aux_loss_coeff", c.aux_loss_coeff},
                              {"model.z_loss_coeff", c.z_loss_coeff},
                              {"model.expert_bias_rate", c.expert_bias_rate}}) {
    if (!(value >= 0) || !std::isfinite(value)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s must be a finite number ≥ 0 (got %g)", field, value));
    }
  }
  for (auto [field, value] : {std::pair{"model.d_expert", c.d_expert},
                              {"model.n_shared_experts", c.n_shared_experts},
                              {"model.d_shared", c.d_shared}}) {
    if (value < 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s must be ≥ 0, 0 meaning derived or none (got %d)", field, value));
    }
  }
  if (!c.is_moe()) return absl::OkStatus();
  if (c.router_score == RouterScore::kSigmoid && c.ffn != FfnKind::kRouterMoe) {
    return absl::InvalidArgumentError(
        "model.router_score sigmoid applies to model.ffn moe only: AoE's scores are norms; use "
        "router_score softmax");
  }
  if (!(c.capacity_factor >= 0) || !std::isfinite(c.capacity_factor)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "model.capacity_factor must be ≥ 0, 0 meaning dropless (got %g)", c.capacity_factor));
  }
  if (c.n_experts < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("model.n_experts must be ≥ 1 (got %d)", c.n_experts));
  }
  if (c.top_k < 1 || c.top_k > c.n_experts) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "model.top_k (%d) must be between 1 and model.n_experts (%d)", c.top_k, c.n_experts));
  }
  if (c.ffn == FfnKind::kAoe) {
    if (c.aoe_score_block < 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "model.aoe_score_block must be ≥ 0 (got %d); 0 picks a block automatically, e.g. %d "
          "experts for model.d_low %d",
          c.aoe_score_block, AoeScoreBlock(c.n_experts, std::max<int64_t>(c.d_low, 1), 0),
          c.d_low));
    }
    if (c.d_low < 1) {
      return absl::InvalidArgumentError(
          absl::StrFormat("model.d_low must be ≥ 1 for AoE (got %d)", c.d_low));
    }
    if (c.d_wide < 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("model.d_wide must be ≥ 0, 0 meaning derived (got %d)", c.d_wide));
    }
    if (c.d_wide == 0 && c.ParameterMatchedDWide() < 1) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "model.d_low (%d) is too large: the parameter-matched d_wide would be %.1f; set "
          "model.d_wide explicitly",
          c.d_low, c.ParameterMatchedDWide()));
    }
  }
  return absl::OkStatus();
}

}  // namespace aoetron

namespace aoetron {

absl::Status ValidateParallelLayout(const ModelConfig& c, int tp, int ep) {
  if (tp < 1 || ep < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("parallel.tp (%d) and parallel.ep (%d) must be ≥ 1", tp, ep));
  }
  auto divisible = [tp](const char* field, int64_t value, const char* hint) -> absl::Status {
    if (value % tp == 0) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrFormat("%s (%d) must be divisible by parallel.tp (%d)%s", field, value, tp, hint));
  };
  if (absl::Status s = divisible("model.n_heads", c.n_heads, ": tensor parallelism splits heads");
      !s.ok()) {
    return s;
  }
  if (c.vocab_size % tp != 0) {
    // Megatron pads to a multiple of 128·tp (--make-vocab-size-divisible-by); token ids above the
    // tokenizer's range never occur, so their logits only learn to stay low.
    const int64_t multiple = 128 * static_cast<int64_t>(tp);
    return absl::InvalidArgumentError(absl::StrFormat(
        "model.vocab_size (%d) must be divisible by parallel.tp (%d): the embedding and LM head "
        "are split by vocabulary; pad it, e.g. model.vocab_size: %d (the next multiple of "
        "128·tp, as Megatron pads)",
        c.vocab_size, tp, (c.vocab_size + multiple - 1) / multiple * multiple));
  }
  if (c.ffn == FfnKind::kAoe) {
    if (c.ResolvedDWide() % tp != 0) {
      // A width that works: the nearest multiple of tp (the parameter count moves by < tp·3d).
      const int64_t width = c.ResolvedDWide();
      const int64_t below = width / tp * tp, above = below + tp;
      const int64_t nearest = below > 0 && width - below <= above - width ? below : above;
      return absl::InvalidArgumentError(absl::StrFormat(
          "the AoE expert width d_wide (%d%s) must be divisible by parallel.tp (%d): set "
          "model.d_wide: %d (the nearest multiple of %d)",
          width, c.d_wide > 0 ? ", model.d_wide" : ", derived from model.d_ffn", tp, nearest, tp));
    }
  } else if (c.ffn == FfnKind::kDense) {
    if (absl::Status s = divisible("model.d_ffn", c.d_ffn, ""); !s.ok()) return s;
  } else if (c.SwiGluExpertWidth() % tp != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the routed expert width (%d, %s) must be divisible by parallel.tp (%d): set "
        "model.d_expert: %d",
        c.SwiGluExpertWidth(),
        c.SwiGluExpertWidth() == c.d_ffn ? "model.d_ffn" : "model.d_ffn / model.granularity", tp,
        std::max<int64_t>(tp, c.SwiGluExpertWidth() / tp * tp)));
  }
  if (c.is_moe() && c.SharedWidth() % tp != 0) {
    const int64_t each = c.SharedWidth() / c.n_shared_experts;
    return absl::InvalidArgumentError(absl::StrFormat(
        "the shared experts' width (model.n_shared_experts %d × d_shared %d) must be divisible "
        "by parallel.tp (%d): set model.d_shared: %d",
        c.n_shared_experts, each, tp, std::max<int64_t>(tp, each / tp * tp)));
  }
  if (c.is_moe() && c.n_experts % ep != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "model.n_experts (%d) must be divisible by parallel.ep (%d)", c.n_experts, ep));
  }
  return absl::OkStatus();
}

}  // namespace aoetron
