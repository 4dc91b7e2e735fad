// Top-K selection per row, with deterministic ties.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace aoetron::ops {

// For each row t of scores [N, n]: the k largest entries in descending order; among equal
// scores the lower column index comes first (and therefore wins the last place).
// values: [N, k] (f32/f64 as scores), indices: i32 [N, k]. Requires 1 ≤ k ≤ n. NaN scores are a
// CHECK failure: a NaN means the model has already diverged.
void TopK(const Tensor& scores, int64_t k, Tensor& values, Tensor& indices);

// The selection is piecewise constant, so gradient reaches only the chosen entries:
// dscores[t, indices[t, j]] += dvalues[t, j].
void TopKBackward(const Tensor& dvalues, const Tensor& indices, Tensor& dscores);

}  // namespace aoetron::ops
