// CausalSelfAttention: multi-head causal attention with rotary embeddings.
//
//   qkv = x W_qkv                [N, 3d] viewed as [B, T, 3, H, hd]
//   q, k ← RoPE(q, k)            in place
//   a   = softmax(q kᵀ/√hd + causal mask) v     [B, T, H, hd]
//   y   = a W_o                  [N, d]
// Saved for backward: x (the caller's), qkv after RoPE, a, and the per-row logsumexp [B, H, T]
// — never a T×T matrix (core/ops/attention.h).
//
// Tensor parallelism (Megatron style, parallel/tensor_parallel.h), tp ranks splitting the heads:
//   w_qkv  global [d, 3, d] = (in, q|k|v, head·head_dim), split over tp on dim 2: rank r holds
//          heads [r·H/tp, (r+1)·H/tp) of each of q, k and v. Its local [d, 3, d/tp] seen as a
//          [d, 3d/tp] matrix has columns (q|k|v, local head, head_dim) — the packed layout the
//          attention kernel takes — so one GEMM gives this rank's qkv and the kernel runs on
//          H/tp heads unchanged. (A [d, 3d] weight split by columns would hand rank 0 all of q
//          and part of k instead; the middle dim makes the head split a plain block split.)
//          Column-parallel: forward needs no collective; backward all-reduces dx over tp.
//   w_o    global [d, d], split over tp on dim 0 (the rows of this rank's heads).
//          Row-parallel: y is each rank's partial a_local · W_o[shard, :], all-reduced over tp.
// Per layer and step this costs two all-reduces of [N, d] over tp (y forward, dx backward).
// x, y, dy and dx are replicated over tp.
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
  // Registers layers.{layer}.attn.w_qkv [d, 3, d] and .w_o [d, d] (global shapes; this rank
  // holds its tp block). config.n_heads must be divisible by the tp size.
  CausalSelfAttention(const ModelConfig& config, int layer, ParameterSet* params,
                      parallel::ProcessGroups& groups);

  // x: [B·T, d] normalised input; y: [B·T, d] overwritten.
  void Forward(const Tensor& x, int64_t batch, int64_t seq, Tensor& y, ActivationArena& arena);
  // Accumulates into dx [B·T, d] and the weights' gradients.
  void Backward(const Tensor& dy, Tensor& dx, ActivationArena& arena);

  // Decoding with a KV cache (GptModel::Decode). x: [B·n, d], the normalised inputs of positions
  // [first, first + n) of each of the B sequences; cache: CacheShape(B, T_max), holding this
  // layer's RoPE'd q, k, v of positions [0, first) and receiving the new ones; y: [B·n, d]
  // overwritten. Each new position attends to the cached keys up to itself
  // (ops::CachedCausalAttention): O(first + n) per position, not a forward over the prefix.
  void Decode(const Tensor& x, int64_t batch, int64_t first, Tensor& cache, Tensor& y,
              ActivationArena& arena);
  // [B, T_max, 3, H/tp, hd]: this rank's heads.
  Shape CacheShape(int64_t batch, int64_t capacity) const {
    return {batch, capacity, 3, local_heads_, head_dim_};
  }

 private:
  ParameterSet* params_;
  parallel::Communicator* tensor_parallel_;
  int64_t d_model_;
  int64_t local_heads_, head_dim_, local_width_;  // H/tp, hd, (H/tp)·hd
  float rope_theta_;
  int w_qkv_, w_o_;
  Tensor x_, qkv_, attended_, lse_;  // saved by Forward
};

}  // namespace aoetron
