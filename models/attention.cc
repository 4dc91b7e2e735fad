#include "models/attention.h"

#include <cmath>

#include "core/ops/attention.h"
#include "core/ops/elementwise.h"
#include "core/ops/gemm.h"
#include "core/ops/rope.h"

namespace aoetron {

CausalSelfAttention::CausalSelfAttention(const ModelConfig& c, int layer, ParameterSet* params,
                                         parallel::ProcessGroups& groups)
    : params_(params),
      d_model_(c.d_model),
      n_heads_(c.n_heads),
      head_dim_(c.head_dim()),
      rope_theta_(static_cast<float>(c.rope_theta)) {
  const std::string prefix = "layers." + std::to_string(layer) + ".attn.";
  Parameter qkv;
  qkv.name = prefix + "w_qkv";
  qkv.global_shape = {c.d_model, 3 * c.d_model};
  qkv.sharding = Sharding::TensorSplit(1);  // heads split by columns
  qkv.init_std = c.init_std;
  w_qkv_ = params->Add(std::move(qkv));
  Parameter out;
  out.name = prefix + "w_o";
  out.global_shape = {c.d_model, c.d_model};
  out.sharding = Sharding::TensorSplit(0);  // row-parallel
  out.init_std = c.init_std / std::sqrt(2.0 * c.n_layers);
  w_o_ = params->Add(std::move(out));
}

void CausalSelfAttention::Forward(const Tensor& x, int64_t batch, int64_t seq, Tensor& y,
                                  ActivationArena& arena) {
  x_ = x;
  const int64_t tokens = batch * seq;
  qkv_ = arena.Allocate({batch, seq, 3, n_heads_, head_dim_}, params_->dtype());
  Tensor qkv_matrix = qkv_.Reshape({tokens, 3 * d_model_});
  ops::Gemm(x, false, (*params_)[w_qkv_].value, false, qkv_matrix);
  ops::RopeForward(qkv_, rope_theta_);
  attended_ = arena.Allocate({batch, seq, n_heads_, head_dim_}, params_->dtype());
  lse_ = arena.Allocate({batch, n_heads_, seq}, params_->dtype());
  ops::CausalAttentionForward(qkv_, attended_, lse_);
  ops::Gemm(attended_.Reshape({tokens, d_model_}), false, (*params_)[w_o_].value, false, y);
}

void CausalSelfAttention::Backward(const Tensor& dy, Tensor& dx, ActivationArena& arena) {
  Parameter& w_o = (*params_)[w_o_];
  Parameter& w_qkv = (*params_)[w_qkv_];
  const int64_t tokens = dy.dim(0);
  Tensor d_attended = arena.Allocate(attended_.shape(), params_->dtype());
  Tensor d_attended_matrix = d_attended.Reshape({tokens, d_model_});
  ops::Gemm(dy, false, w_o.value, true, d_attended_matrix);
  ops::Gemm(attended_.Reshape({tokens, d_model_}), true, dy, false, w_o.grad, 1.0f, 1.0f);
  Tensor dqkv = arena.Allocate(qkv_.shape(), params_->dtype());
  ops::Fill(dqkv, 0.0);
  ops::CausalAttentionBackward(d_attended, qkv_, attended_, lse_, dqkv);
  ops::RopeBackward(dqkv, rope_theta_);
  const Tensor dqkv_matrix = dqkv.Reshape({tokens, 3 * d_model_});
  ops::Gemm(x_, true, dqkv_matrix, false, w_qkv.grad, 1.0f, 1.0f);
  ops::Gemm(dqkv_matrix, false, w_qkv.value, true, dx, 1.0f, 1.0f);
}

}  // namespace aoetron
