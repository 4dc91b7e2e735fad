// Grouping (token, expert) pairs by expert, so every expert's work is one contiguous block of
// rows and runs as one GEMM — no per-token loops.
//
// A token t chose experts expert_index[t, 0..K). Pair (t, j) goes to row position[t, j] of the
// grouped buffer of M = N·K rows. Expert e owns rows [offsets[e], offsets[e+1]); inside a block,
// pairs are ordered by token index, so the layout is a pure function of expert_index.
//
// Every op below is a gather or a per-token sum: each output row is written by exactly one
// thread, so results are deterministic without atomics.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/tensor.h"

namespace aoetron::ops {

struct ExpertLayout {
  int64_t num_experts = 0;
  std::vector<int64_t> counts;   // [n] pairs routed to each expert
  std::vector<int64_t> offsets;  // [n + 1] first grouped row of each expert; offsets[n] = M
  Tensor position;               // i32 [N, K], on the device of expert_index
};

// expert_index: i32 [N, K] with entries in [0, num_experts). Counts come back to the host.
// keep_limit: empty (dropless) or one limit per expert (capacity): expert e's block then holds
// only its first keep_limit[e] pairs in token order, counts[e] ≤ keep_limit[e], and the dropped
// pairs sit after every block in (t, j) order — offsets[n] < N·K, and position is still a
// permutation of [0, N·K).
ExpertLayout BuildExpertLayout(const Tensor& expert_index, int64_t num_experts,
                               std::span<const int64_t> keep_limit = {});

// out[position[t, j], :] = x[t, :].   x: [N, d], out: [M, d].
void PermuteRows(const Tensor& x, const Tensor& position, Tensor& out);
// dx[t, :] += Σ_j dout[position[t, j], :].
void PermuteRowsBackward(const Tensor& dout, const Tensor& position, Tensor& dx);

// AoE's cached activations travel with their pair: for e = expert_index[t, j],
// out[position[t, j], :] = c[t, e·r : (e+1)·r].   c: [N, n·r], out: [M, r].
void GatherExpertSlices(const Tensor& c, const Tensor& expert_index, const Tensor& position,
                        Tensor& out);
// dc[t, e·r : (e+1)·r] += dout[position[t, j], :] for e = expert_index[t, j].
void GatherExpertSlicesBackward(const Tensor& dout, const Tensor& expert_index,
                                const Tensor& position, Tensor& dc);

// The weighted combine: y[t, :] = Σ_j weights[t, j] · expert_out[position[t, j], :].
// expert_out: [M, d], weights: [N, K], y: [N, d] (overwritten).
void CombineRows(const Tensor& expert_out, const Tensor& position, const Tensor& weights,
                 Tensor& y);
// d_expert_out[position[t, j], :] += weights[t, j] · dy[t, :],
// dweights[t, j] += ⟨dy[t, :], expert_out[position[t, j], :]⟩.
void CombineRowsBackward(const Tensor& dy, const Tensor& expert_out, const Tensor& position,
                         const Tensor& weights, Tensor& d_expert_out, Tensor& dweights);

}  // namespace aoetron::ops
