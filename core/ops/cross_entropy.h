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

// ---- Vocabulary-sharded cross-entropy (tensor parallelism) -------------------------------------
// The three stages that parallel::VocabParallelCrossEntropy* runs with an all-reduce after each
// of the first two (parallel/tensor_parallel.h has the math). logits_shard: [N, V_s], columns
// [vocab_begin, vocab_begin + V_s) of the global logits; targets: i32 [N] (< V; negative =
// ignored); row statistics in f64. The arithmetic is the fused kernel's above, so with one shard
// (V_s = V) the three stages give its bits.
//
// row_max[t] = max_j logits_shard[t, j].   row_max: f64 [N].
void CrossEntropyShardRowMax(const Tensor& logits_shard, Tensor& row_max);
// sums[0, t] = Σ_j e^(logits_shard[t, j] − m_t) with m_t = row_max[t] (after the max over shards)
// rounded to the logits' dtype; sums[1, t] = the target's logit when this shard holds it, else 0;
// both 0 for ignored rows. With store_exp, e^(x − m) overwrites the logits (backward).
// sums: f64 [2, N].
// A target ≥ vocab_size is a CHECK failure.
void CrossEntropyShardSums(Tensor& logits_shard, const Tensor& targets, int64_t vocab_begin,
                           int64_t vocab_size, const Tensor& row_max, bool store_exp, Tensor& sums);
// With Z and the target logit summed over shards: losses[t] = m_t + log Z_t − x_target,t (0 for
// ignored rows). With backward, the logits (holding e^(x − m) from the sums stage) become
// grad_scale · (e / Z − onehot(target)) over this shard's columns, 0 for ignored rows.
void CrossEntropyShardFinish(Tensor& logits_shard, const Tensor& targets, int64_t vocab_begin,
                             const Tensor& row_max, const Tensor& sums, bool backward,
                             double grad_scale, Tensor& losses);

}  // namespace aoetron::ops
