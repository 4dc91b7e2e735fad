// The routed FFN's score functions beside softmax (models/routed_ffn.h): DeepSeek-V3's sigmoid
// scores with gate weights renormalised over the selected experts, and ST-MoE's router z-loss.
// Rows are tokens, columns experts (or the K selected slots). Deterministic: every row sum runs
// left to right.
//
//   Sigmoid                 y = σ(x) = 1 / (1 + e^−x)
//   SigmoidBackward         dx += dy · y · (1 − y)
//   RowNormalize            y[t, i] = x[t, i] / Σ_j x[t, j]                (x > 0 on every row)
//   RowNormalizeBackward    dx[t, i] += (dy[t, i] − Σ_j dy[t, j] · y[t, j]) / Σ_j x[t, j]
//   RowLogSumExp            lse[t] = m_t + log Σ_i e^(x[t, i] − m_t),  m_t = max_i x[t, i];
//                           returns Σ_t lse[t]² (ops::SumSquares, in double) — the z-loss's sum
//   LogSumExpSquareBackward dx[t, i] += scale · 2 · lse[t] · e^(x[t, i] − lse[t])
//                           (∂(scale · lse²)/∂x = scale · 2·lse · softmax(x))
// x, y, dx, dy: [N, m] of one float dtype; lse: [N], the same dtype.
#pragma once

#include "core/tensor.h"

namespace aoetron::ops {

void Sigmoid(const Tensor& x, Tensor& y);
void SigmoidBackward(const Tensor& dy, const Tensor& y, Tensor& dx);
void RowNormalize(const Tensor& x, Tensor& y);
void RowNormalizeBackward(const Tensor& dy, const Tensor& y, const Tensor& x, Tensor& dx);
double RowLogSumExp(const Tensor& x, Tensor& lse);
void LogSumExpSquareBackward(const Tensor& x, const Tensor& lse, double scale, Tensor& dx);

}  // namespace aoetron::ops
