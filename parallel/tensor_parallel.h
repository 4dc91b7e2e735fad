// Tensor-parallel primitives (Megatron style): the collectives at the edges of a tensor-parallel
// region, and the vocabulary-parallel embedding and cross-entropy.
//
// Inside a tensor-parallel (tp) group every rank holds the same replicated activations (the
// residual stream, norm outputs, token ids and targets) and a 1/tp slice of each split weight.
// A split layer is a column-parallel product followed by a row-parallel one:
//
//     x (replicated) ──copy──▶ x · W1[:, shard] ──local──▶ (·) · W2[shard, :] ──reduce──▶ y
//
// and exactly two collectives, conjugate to each other, appear at its edges:
//
//   copy to tp region      forward: identity (x is already on every rank)
//                          backward: dx = Σ_tp (each rank's partial dx)    — one AllReduce(sum)
//   reduce from tp region  forward: y = Σ_tp (each rank's partial y)      — one AllReduce(sum)
//                          backward: identity (dy is replicated)
//
// Layers call the two non-identity halves below by name, so a reader sees which side of which
// region a collective belongs to. With a group of one both are no-ops.
//
// Vocabulary parallelism (embedding rows and LM-head columns split over tp, contiguous blocks in
// tp-rank order; rank r holds vocabulary ids [vocab_begin, vocab_begin + V/tp)):
//   embedding      each rank looks up the ids it holds, writes zero rows for the others, and the
//                  rows are summed over tp (exactly one rank contributes each row, so the sum is
//                  exact: the result is bitwise the single-process lookup).
//   cross-entropy  from local logits [N, V/tp] only — no rank ever holds a full logits row:
//                    m = max over tp of the local row maxima            AllReduce(max)  [N]
//                    Z = Σ over tp of Σ_local e^(x − m),
//                    x_target = the owning rank's logit, 0 elsewhere    AllReduce(sum) [2, N]
//                    loss = m + log Z − x_target                        (same on every tp rank)
//                    dx = scale · (e^(x − m) / Z − onehot(target))      local, no collective
//
// Contracts shared by every call: collective over `tp` (every tp rank makes the same calls in the
// same order with the same N); tensors on the model's device — the arithmetic is core/ops kernels
// (ops::EmbeddingShard*, ops::CrossEntropyShard*), these functions only add the collectives;
// errors are programming errors (AOETRON_CHECK), e.g. an id or target outside [0, vocab_size).
// Not thread-safe beyond the Communicator's contract. Deterministic: rows in parallel, every
// reduction inside a row in a fixed order.
#pragma once

#include <cstdint>

#include "core/arena.h"
#include "core/tensor.h"
#include "parallel/communicator.h"

namespace aoetron::parallel {

// Backward half of "copy to tp region": `partial_grad` (each rank's gradient w.r.t. a replicated
// input, from its own weight shard) becomes the full gradient, in place.
void CopyToTensorParallelRegionBackward(Communicator& tp, Tensor partial_grad);

// Forward half of "reduce from tp region": `partial_output` (a row-parallel product over this
// rank's shard of the reduction dimension) becomes the full output, in place.
void ReduceFromTensorParallelRegionForward(Communicator& tp, Tensor partial_output);

// out[t, :] = table[ids[t], :] with table split by rows over tp. ids: i32 [N] in
// [0, vocab_size), replicated; table_shard: [V/tp, d], rows [vocab_begin, vocab_begin + V/tp) of
// the global table; out: [N, d] overwritten, the same on every tp rank.
void VocabParallelEmbeddingForward(Communicator& tp, const Tensor& ids, const Tensor& table_shard,
                                   int64_t vocab_begin, int64_t vocab_size, Tensor& out);

// dtable_shard[ids[t] − vocab_begin, :] += dout[t, :] for the ids this rank holds, in order of t
// (threads split the d columns). dout is replicated, so there is no collective.
void VocabParallelEmbeddingBackward(const Tensor& ids, const Tensor& dout, int64_t vocab_begin,
                                    int64_t vocab_size, Tensor& dtable_shard);

// Cross-entropy over vocabulary-split logits. logits_shard: [N, V/tp], columns
// [vocab_begin, vocab_begin + V/tp) of the global logits; targets: i32 [N], replicated, < V
// (negative: ignored, loss 0 and zero gradient); losses: [N] overwritten with
// logsumexp(global row) − global logit of the target, bitwise the same on every tp rank.
// With `grad_scale` given (backward), logits_shard is OVERWRITTEN with
// grad_scale · (softmax(global row) − onehot(target)) restricted to this rank's columns.
// `scratch` lends 3·N f64 of row statistics for the duration of the call (released before
// return). The arithmetic is the single-process kernel's (core/ops/cross_entropy.h): Z summed in
// T over blocks of 1024 and the block sums in double; the loss formed in double. With tp = 1 it
// IS the single-process kernel (losses then follow its dtype rule: f32 for bf16 logits).
void VocabParallelCrossEntropyForward(Communicator& tp, const Tensor& logits_shard,
                                      const Tensor& targets, int64_t vocab_begin,
                                      int64_t vocab_size, Tensor& losses, ActivationArena& scratch);
void VocabParallelCrossEntropyForwardBackward(Communicator& tp, Tensor& logits_shard,
                                              const Tensor& targets, int64_t vocab_begin,
                                              int64_t vocab_size, double grad_scale, Tensor& losses,
                                              ActivationArena& scratch);

}  // namespace aoetron::parallel
