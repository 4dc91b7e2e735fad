// Learning-rate schedules: linear warmup, then a decay shape, never below a floor.
//
//   step < warmup:          lr = max_lr · (step + 1) / warmup
//   constant:               lr = max_lr
//   cosine:                 lr = min_lr + (max_lr − min_lr) · ½(1 + cos(π·τ))
//   linear:                 lr = min_lr + (max_lr − min_lr) · (1 − τ)
//   wsd (warmup-stable-decay, Hu et al. 2024): max_lr until the last `decay_fraction` of the
//                            steps, then linear to min_lr over them:
//                            f = decay_fraction; lr = max_lr for τ ≤ 1 − f, else
//                            min_lr + (max_lr − min_lr) · (1 − τ) / f  (f = 0: max_lr throughout)
// with τ = (step − warmup) / (total − warmup) clamped to [0, 1] (τ = 1 when total ≤ warmup).
// `step` is 0-based. The floor min_lr applies to the decay; warmup starts at max_lr / warmup.
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"

namespace aoetron {

enum class LrDecay { kConstant, kCosine, kLinear, kWsd };

absl::StatusOr<LrDecay> ParseLrDecay(std::string_view name);  // "constant", "cosine", ...

struct LrSchedule {
  LrDecay decay = LrDecay::kCosine;
  double max_lr = 3e-4;
  double min_lr = 3e-5;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double wsd_decay_fraction = 0.1;  // wsd only

  double At(int64_t step) const;
};

}  // namespace aoetron
