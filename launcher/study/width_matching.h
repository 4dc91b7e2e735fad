// The matching rule of a scaling study: give a model the active parameters, or the training
// FLOPs per token, of a reference model by choosing its one free width.
//
// The free width is the hidden width of what each token runs through, as the layers see it:
//   dense  model.d_ffn     (the MLP)
//   moe    model.d_expert  (each routed SwiGLU expert, granularity already applied; shared
//                           experts with d_shared 0 follow it)
//   aoe    model.d_wide    (each AoE expert; its low-rank gate Ŵ_down, d·n·r, is not free)
// Both quantities are affine in that width with a positive slope (models/flop_count.h), so the
// width that hits a target is found exactly, then rounded by RoundExpertWidth (a multiple of 64
// when ≥ 64, else of 8, at least 8) so every tp ≤ 8 splits it. The result is within half a
// rounding step of the exact width, so its quantity is within one step's worth of the target.
//
// Active FLOPs are CountTrainingFlopsPerToken(...).total(): AoE pays for scoring all n experts
// (6·L·d·n·r per token), a router for its d·n logits, everyone for attention and the LM head.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "models/model_config.h"

namespace aoetron::study {

enum class MatchedQuantity {
  kActiveParams,  // ActiveMatmulParameters (models/flop_count.h)
  kActiveFlops,   // training FLOPs per token
};

// "active_params" / "active_flops".
std::string MatchedQuantityName(MatchedQuantity quantity);

// The quantity for `model` (a layers' ModelConfig: granularity applied).
int64_t MatchedQuantityOf(const ModelConfig& model, MatchedQuantity quantity);

// The config field holding the free width of `kind`: "model.d_ffn", "model.d_expert",
// "model.d_wide".
std::string FreeWidthField(FfnKind kind);
// The free width of `model` as it resolves (d_ffn, SwiGluExpertWidth(), ResolvedDWide()).
int64_t FreeWidth(const ModelConfig& model);
// Sets the free width of `model` explicitly.
void SetFreeWidth(int64_t width, ModelConfig* model);

struct MatchedWidth {
  double exact = 0.0;    // the width that would hit the target exactly
  int64_t width = 0;     // RoundExpertWidth(exact)
  int64_t achieved = 0;  // the quantity with `width`
  // How much one rounding step of the width (8 below 64, else 64) changes the quantity.
  int64_t quantity_per_step = 0;
};

// The width for `model` (its free width is ignored) that gives `target`. FailedPrecondition when
// no width ≥ 1 can: the rest of the model alone already costs more than the target. The message
// says by how much, in terms of the quantity; the caller adds which point and field.
absl::StatusOr<MatchedWidth> DeriveMatchedWidth(const ModelConfig& model, MatchedQuantity quantity,
                                                int64_t target);

}  // namespace aoetron::study
