// AoE's per-pair gate inputs: the r columns C_i = x·W_down^i of each selected (token, expert)
// pair, laid out by SLOT — pair (t, j) owns columns j·r .. (j+1)·r of row t of an [N, K·r]
// tensor. The routed FFN hands this per-token cache to the dispatcher (models/aoe_scorer.h), so
// the full C = x·Ŵ_down [N, n·r] need not outlive the scoring (aoe_memory: blockwise).
//
// expert_index: i32 [N, K], entries in [0, n). Every output element is written by one thread;
// sums run in a fixed order: deterministic for any thread count.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace aoetron::ops {

// out[t, j·r : (j+1)·r] = c[t, e·r : (e+1)·r], e = expert_index[t, j].
// c: [N, n·r], out: [N, K·r] (same dtype; r = out.dim(1) / K). Forward: overwrites out.
void TakeExpertSlices(const Tensor& c, const Tensor& expert_index, Tensor& out);

// The backward of TakeExpertSlices restricted to the experts [first_expert, first_expert + m):
// dc holds their columns (dc: [N, m·r], the column block first_expert·r .. (first_expert + m)·r
// of an [N, num_experts·r] gradient) and
//   dc[t, (e − first_expert)·r : …] += dout[t, j·r : (j+1)·r]   for every pair with e in range;
// pairs of other experts are skipped. first_expert = 0, m = num_experts is the whole backward.
// A token's pairs naming one expert twice add in order of j.
void TakeExpertSlicesBackward(const Tensor& dout, const Tensor& expert_index, int64_t num_experts,
                              int64_t first_expert, Tensor& dc);

// The selected slices recomputed from x instead of taken from a stored C:
//   out[t, j·r + i] = Σ_k x[t, k] · w[k, e·r + i],   e = expert_index[t, j]
// x: [N, d], w: [d, n·r] (AoE's Ŵ_down), out: [N, K·r] (x's dtype). The sum over k runs in
// ascending order in the accumulation dtype (f32 for f32/bf16, f64 for f64), so for f64 it is
// the reference GEMM loop's value to the last bit; for f32 it may differ from a BLAS GEMM's
// C_i in the last bits (a different summation order). 2·N·K·d·r FLOPs.
void ExpertSliceProduct(const Tensor& x, const Tensor& w, const Tensor& expert_index, Tensor& out);

}  // namespace aoetron::ops
