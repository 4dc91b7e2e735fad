// RMSNorm (Zhang & Sennrich 2019): y = x / rms(x) ⊙ w, rms(x) = sqrt(mean(x²) + eps).
#pragma once

#include "core/tensor.h"

namespace aoetron::ops {

// x: [N, d], weight: [d], y: [N, d], rstd: [N] saved for backward (rstd = 1 / rms(x)); rstd
// has x's dtype, except f32 when x is bf16 (CUDA: statistics stay in fp32).
void RmsNormForward(const Tensor& x, const Tensor& weight, float eps, Tensor& y, Tensor& rstd);

// With x̂ = x · rstd and g = dy ⊙ w:
//   dx += rstd · (g − x̂ · mean(g ⊙ x̂)),   dweight += Σ_rows dy ⊙ x̂.
void RmsNormBackward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                     Tensor& dx, Tensor& dweight);

}  // namespace aoetron::ops
