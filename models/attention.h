// CausalSelfAttention: multi-head causal attention with rotary embeddings.
//
//   qkv = x W_qkv                [N, 3d] viewed as [B, T, 3, H, hd]
//   q, k ← RoPE(q, k)            in place
//   a   = softmax(q kᵀ/√hd + causal mask) v     [B, T, H, hd]
//   y   = a W_o                  [N, d]
// Saved for backward: x (the caller's), qkv after RoPE, a, and the per-row logsumexp [B, H, T]
// — never a T×T matrix (core/ops/attention.h).
#pragma once

#include <string>

#include "core/arena.h"
#include "core/tensor.h"
#include "models/model_config.h"
#include "models/parameter.h"
#include "parallel/process_groups.h"

namespace aoetron {

class CausalSelfAttention {
 public:
  // Registers layers.{layer}.attn.w_qkv [d, 3d] and .w_o [d, d].
  CausalSelfAttention(const ModelConfig& config, int layer, ParameterSet* params,
                      parallel::ProcessGroups& groups);

  // x: [B·T, d] normalised input; y: [B·T, d] overwritten.
  void Forward(const Tensor& x, int64_t batch, int64_t seq, Tensor& y, ActivationArena& arena);
  // Accumulates into dx [B·T, d] and the weights' gradients.
  void Backward(const Tensor& dy, Tensor& dx, ActivationArena& arena);

 private:
  ParameterSet* params_;
  int64_t d_model_, n_heads_, head_dim_;
  float rope_theta_;
  int w_qkv_, w_o_;
  Tensor x_, qkv_, attended_, lse_;  // saved by Forward
};

}  // namespace aoetron
