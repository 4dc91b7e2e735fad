// Causal attention for decoding with a KV cache: the new positions' queries against every cached
// key up to their own position, so that generating a token costs one step (O(T) per token), not a
// forward over the whole prefix (O(T²)).
//
//   out[b, i, h] = Σ_{j ≤ t} softmax_j(q_t · k_j / √hd) · v_j,   t = first + i,  i < count
// with q_t, k_j, v_j the heads of qkv_cache[b, t or j, 0|1|2, h]. Rows [0, first + count) of the
// cache must hold RoPE'd q, k and v (CausalSelfAttention::Decode writes the new rows before
// calling). The same arithmetic as CausalAttentionForward's row t (max-shifted exponentials, sums
// in the accumulation dtype), in one pass per row: deterministic for any thread count.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace aoetron::ops {

// qkv_cache: [B, T_max, 3, H, hd]; out: [B, count, H, hd] of the same dtype;
// 0 ≤ first, first + count ≤ T_max.
void CachedCausalAttention(const Tensor& qkv_cache, int64_t first, int64_t count, Tensor& out);

}  // namespace aoetron::ops
