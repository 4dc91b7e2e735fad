// The per-micro-batch routing arithmetic of the routed FFN (models/routed_ffn.h) that is not a
// top-K or a softmax: the balance statistics, the "release" gate's gather, and the aux loss's
// gradient. Deterministic: every sum runs in a fixed order.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/tensor.h"

namespace aoetron::ops {

// One pass over a micro-batch's routing, returned to the host (it is all-reduced over the
// data-parallel group and sizes the capacity rule), n = probs.dim(1):
//   [i]        pairs routed to expert i (entries of top_index equal to i),   i < n
//   [n + i]    Σ_t probs[t, i]                       (t ascending, in double)
//   [2n]       N, the tokens
//   [2n + 1]   Σ_t −Σ_i q_ti log q_ti                 (t, then i ascending; q = probs)
// top_index: i32 [N, K] in [0, n); probs: [N, n] (each row a distribution).
std::vector<double> RoutingStatistics(const Tensor& top_index, const Tensor& probs);

// out[t, j] = x[t, index[t, j]].   x: [N, n], index: i32 [N, K] in [0, n), out: [N, K].
void TakeAlongRows(const Tensor& x, const Tensor& index, Tensor& out);

// x[t, i] += row[i] for every row t, added in double and rounded once to x's dtype.
// x: [N, n]; row: n host values.
void AddRowVector(std::span<const double> row, Tensor& x);

}  // namespace aoetron::ops
