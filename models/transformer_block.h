// TransformerBlock: one pre-norm decoder layer.
//
//   h1 = RMSNorm(x_in) ;  x_mid = x_in + Attention(h1)
//   h2 = RMSNorm(x_mid);  x_out = x_mid + FFN(h2)
// Backward follows the residual stream down: the gradient reaching x_mid is dx_out plus the
// FFN branch's; the gradient reaching x_in is that plus the attention branch's.
#pragma once

#include <memory>

#include "core/arena.h"
#include "models/attention.h"
#include "models/feed_forward.h"
#include "parallel/process_groups.h"

namespace aoetron {

class TransformerBlock {
 public:
  TransformerBlock(const ModelConfig& config, int layer, ParameterSet* params,
                   parallel::ProcessGroups& groups);

  // x_in, x_out: [B·T, d]. x_in must stay alive and unchanged until Backward.
  void Forward(const Tensor& x_in, int64_t batch, int64_t seq, Tensor& x_out,
               ActivationArena& arena);
  // dx_out: [B·T, d]; dx_in: [B·T, d] overwritten with the gradient w.r.t. x_in.
  void Backward(const Tensor& dx_out, double loss_scale, Tensor& dx_in, ActivationArena& arena);

  // KV-cache decoding of positions [first, first + n) (CausalSelfAttention::Decode); x_in,
  // x_out: [B·n, d]. Nothing is kept for backward.
  void Decode(const Tensor& x_in, int64_t batch, int64_t first, Tensor& cache, Tensor& x_out,
              ActivationArena& arena);
  CausalSelfAttention& attention() { return attention_; }
  FeedForward& ffn() { return *ffn_; }

 private:
  ParameterSet* params_;
  float norm_eps_;
  int attn_norm_, ffn_norm_;
  CausalSelfAttention attention_;
  std::unique_ptr<FeedForward> ffn_;
  Tensor x_in_, h1_, rstd1_, x_mid_, h2_, rstd2_;  // saved by Forward
};

}  // namespace aoetron
