// L2 norms of equal-width column groups of each row — AoE's expert scores p_i = ‖C_i‖₂, where
// row t of C = x Ŵ_down holds n groups of r values, one group per expert.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace aoetron::ops {

// c: [N, G · group_width], norms: [N, G], norms[t, g] = ‖c[t, g·w : (g+1)·w]‖₂ (accumulated in
// double per group, so the result is exact to f32 rounding).
void GroupedL2Norm(const Tensor& c, int64_t group_width, Tensor& norms);

// dc[t, group g] += dnorms[t, g] · c[t, group g] / norms[t, g]; a zero norm contributes zero
// (the subgradient at 0 that keeps training finite).
void GroupedL2NormBackward(const Tensor& dnorms, const Tensor& c, const Tensor& norms,
                           int64_t group_width, Tensor& dc);

}  // namespace aoetron::ops
