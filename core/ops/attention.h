// Causal multi-head scaled dot-product attention.
//
// Per batch b and head h, with Q, K, V: [T, hd] and s = 1/sqrt(hd):
//   S = s · Q Kᵀ (masked: S[i, j] = −∞ for j > i),  P = softmax_rows(S),  O = P V
// Forward keeps only lse[i] = logsumexp_j S[i, j] for backward — never the T×T matrix P.
// Backward recomputes P = exp(S − lse) one (b, h) at a time in a per-thread scratch:
//   dP = dO Vᵀ,  dV = Pᵀ dO,  dS = P ⊙ (dP − rowsum(dO ⊙ O)),  dQ = s · dS K,  dK = s · dSᵀ Q
// Memory kept for backward: qkv (the layer saves it anyway), out and lse [B, H, T].
#pragma once

#include "core/tensor.h"

namespace aoetron::ops {

// qkv: [B, T, 3, H, hd] (q, k, v packed per token, RoPE already applied),
// out: [B, T, H, hd], lse: [B, H, T] (qkv's dtype; f32 when qkv is bf16 on CUDA).
void CausalAttentionForward(const Tensor& qkv, Tensor& out, Tensor& lse);

// dout: [B, T, H, hd]; dqkv: [B, T, 3, H, hd] accumulated.
void CausalAttentionBackward(const Tensor& dout, const Tensor& qkv, const Tensor& out,
                             const Tensor& lse, Tensor& dqkv);

}  // namespace aoetron::ops
