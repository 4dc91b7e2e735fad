// The reductions that turn a micro-batch's per-token losses into the numbers the trainer needs:
// how many targets count, and their summed loss. Both come back to the host (they size the
// loss scale and are logged); on a GPU each is one small device-to-host copy.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace aoetron::ops {

// Number of entries of targets (i32, any shape) that are ≥ 0 (negative targets are ignored).
int64_t CountTargets(const Tensor& targets);

// Σ values[i] in index order, accumulated in double (the same bits for every thread count).
// values: f32 or f64 (losses are f32 for bf16 activations), any shape.
double SumInOrder(const Tensor& values);

}  // namespace aoetron::ops
