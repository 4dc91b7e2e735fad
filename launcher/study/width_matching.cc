#include "launcher/study/width_matching.h"

#include "absl/strings/str_format.h"
#include "models/flop_count.h"

namespace aoetron::study {

std::string MatchedQuantityName(MatchedQuantity quantity) {
  return quantity == MatchedQuantity::kActiveParams ? "active_params" : "active_flops";
}

int64_t MatchedQuantityOf(const ModelConfig& model, MatchedQuantity quantity) {
  return quantity == MatchedQuantity::kActiveParams ? ActiveMatmulParameters(model)
                                                    : CountTrainingFlopsPerToken(model).total();
}

std::string FreeWidthField(FfnKind kind) {
  switch (kind) {
    case FfnKind::kDense:
      return "model.d_ffn";
    case FfnKind::kRouterMoe:
      return "model.d_expert";
    case FfnKind::kAoe:
      return "model.d_wide";
  }
  return "?";
}

int64_t FreeWidth(const ModelConfig& model) { return model.ExpertWidth(); }

void SetFreeWidth(int64_t width, ModelConfig* model) {
  switch (model->ffn) {
    case FfnKind::kDense:
      model->d_ffn = width;
      break;
    case FfnKind::kRouterMoe:
      model->d_expert = width;
      break;
    case FfnKind::kAoe:
      model->d_wide = width;
      break;
  }
}

absl::StatusOr<MatchedWidth> DeriveMatchedWidth(const ModelConfig& model, MatchedQuantity quantity,
                                                int64_t target) {
  // The quantity is q(w) = q0 + slope·w; two widths give both (exact integers, so no rounding).
  constexpr int64_t kLow = 64, kHigh = 128;
  ModelConfig probe = model;
  SetFreeWidth(kLow, &probe);
  const int64_t at_low = MatchedQuantityOf(probe, quantity);
  SetFreeWidth(kHigh, &probe);
  const int64_t at_high = MatchedQuantityOf(probe, quantity);
  const double slope = static_cast<double>(at_high - at_low) / (kHigh - kLow);
  const double fixed = static_cast<double>(at_low) - slope * kLow;  // q(0): everything else
  if (slope <= 0) {
    return absl::FailedPreconditionError("the width does not change " +
                                         MatchedQuantityName(quantity));
  }
  MatchedWidth result;
  result.exact = (static_cast<double>(target) - fixed) / slope;
  if (result.exact < 1.0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s would need a width of %.1f (< 1): without its expert width the model already has "
        "%s = %.0f, against the target %d",
        FreeWidthField(model.ffn), result.exact, MatchedQuantityName(quantity), fixed, target));
  }
  result.width = RoundExpertWidth(result.exact);
  SetFreeWidth(result.width, &probe);
  result.achieved = MatchedQuantityOf(probe, quantity);
  result.quantity_per_step = static_cast<int64_t>(slope * (result.exact >= 64.0 ? 64.0 : 8.0));
  return result;
}

}  // namespace aoetron::study
