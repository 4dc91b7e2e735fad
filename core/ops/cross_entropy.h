// Softmax cross-entropy over a vocabulary, fused so the [N, V] probabilities never exist apart
// from the logits buffer.
#pragma once

#include "core/tensor.h"

namespace aoetron::ops {

// losses[t] = logsumexp(logits[t, :]) − logits[t, targets[t]].
// logits: [N, V], targets: i32 [N], losses: [N] (logits' dtype; f32 when logits are bf16 on
// CUDA). A negative target means "ignore": loss 0. On CUDA a target ≥ V is reported at the next
// synchronisation instead of at the call (core/cuda/device_errors.h).
void CrossEntropyForward(const Tensor& logits, const Tensor& targets, Tensor& losses);

// Forward and backward in one pass over each row: writes losses as above, then OVERWRITES
// logits with dlogits[t, :] = grad_scale · (softmax(logits[t, :]) − onehot(targets[t])), zero
// for ignored rows. grad_scale is dLoss/dlosses[t] (1/N for a mean loss).
void CrossEntropyForwardBackward(Tensor& logits, const Tensor& targets, double grad_scale,
                                 Tensor& losses);

}  // namespace aoetron::ops
