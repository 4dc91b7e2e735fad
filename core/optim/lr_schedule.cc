#include "core/optim/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace aoetron {

absl::StatusOr<LrDecay> ParseLrDecay(std::string_view name) {
  if (name == "constant") return LrDecay::kConstant;
  if (name == "cosine") return LrDecay::kCosine;
  if (name == "linear") return LrDecay::kLinear;
  if (name == "wsd") return LrDecay::kWsd;
  // std::string: this abseil's string_view is its own type, not std::string_view.
  return absl::InvalidArgumentError(
      absl::StrCat("unknown learning-rate decay \"", std::string(name),
                   "\"; valid values: constant, cosine, linear, wsd"));
}

double LrSchedule::At(int64_t step) const {
  AOETRON_CHECK(step >= 0) << "LrSchedule::At: step is 0-based, got " << step;
  if (step < warmup_steps) {
    return max_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  }
  // τ: progress through the steps after warmup, 0 at the first, 1 at total_steps and beyond.
  // With no steps left after warmup (total_steps ≤ warmup_steps) the decay is complete at once.
  const int64_t decay_steps = total_steps - warmup_steps;
  const double tau =
      decay_steps <= 0
          ? 1.0
          : std::clamp(static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps),
                       0.0, 1.0);
  switch (decay) {
    case LrDecay::kConstant:
      return max_lr;
    case LrDecay::kCosine:
      return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * tau));
    case LrDecay::kLinear:
      return min_lr + (max_lr - min_lr) * (1.0 - tau);
    case LrDecay::kWsd: {
      // Stable at max_lr for τ ≤ 1 − f, then linear from max_lr to min_lr over the last f of τ.
      const double fraction = std::clamp(wsd_decay_fraction, 0.0, 1.0);
      const double decay_start = 1.0 - fraction;
      if (fraction == 0.0 || tau <= decay_start) return max_lr;
      return min_lr + (max_lr - min_lr) * (1.0 - tau) / fraction;
    }
  }
  AOETRON_CHECK(false) << "LrSchedule::At: unknown decay " << static_cast<int>(decay);
  return 0.0;
}

}  // namespace aoetron
