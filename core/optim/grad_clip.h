// Global gradient-norm clipping.
//
// ‖g‖ = sqrt(Σ over every gradient element²). When ‖g‖ > max_norm, every gradient is scaled by
// max_norm / (‖g‖ + 1e-6). A non-finite norm is reported, never "clipped" into finite garbage:
// the trainer decides to stop or skip.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace aoetron {

// Σ g² over all tensors, in double, deterministic.
double GlobalSumSquares(const std::vector<Tensor>& grads);

// The clip rule: the factor that brings a global norm `norm` to at most max_norm —
// max_norm / (norm + 1e-6) when norm > max_norm > 0, else 1 — and NaN for a non-finite norm.
double ClipFactor(double norm, double max_norm);

// Scales grads in place so their global norm is at most max_norm (max_norm ≤ 0 disables).
// `norm` is the global norm before clipping (computed by the caller, possibly across ranks).
// Returns the factor applied (1 when no clipping happened). A non-finite norm leaves the grads
// untouched and returns NaN, so the report cannot be mistaken for a normal step.
double ClipByGlobalNorm(std::vector<Tensor>& grads, double norm, double max_norm);

}  // namespace aoetron
