#include "models/attention.h"

#include <cmath>

#include "core/ops/attention.h"
#include "core/ops/cached_attention.h"
#include "core/ops/elementwise.h"
#include "core/ops/gemm.h"
#include "core/ops/rope.h"
#include "parallel/tensor_parallel.h"

namespace aoetron {

CausalSelfAttention::CausalSelfAttention(const ModelConfig& c, int layer, ParameterSet* params,
                                         parallel::ProcessGroups& groups)
    : params_(params),
      tensor_parallel_(&groups.tensor_parallel()),
      d_model_(c.d_model),
      head_dim_(c.head_dim()),
      rope_theta_(static_cast<float>(c.rope_theta)) {
  const int tp = tensor_parallel_->size();
  AOETRON_CHECK(tp == params->tp_size() && tensor_parallel_->rank() == params->tp_rank())
      << "the tensor-parallel group (rank " << tensor_parallel_->rank() << " of " << tp
      << ") and the parameter set (rank " << params->tp_rank() << " of " << params->tp_size()
      << ") disagree";
  AOETRON_CHECK(c.n_heads % tp == 0)
      << "model.n_heads (" << c.n_heads << ") must be divisible by parallel.tp (" << tp << ")";
  local_heads_ = c.n_heads / tp;
  local_width_ = local_heads_ * head_dim_;
  const std::string prefix = "layers." + std::to_string(layer) + ".attn.";
  Parameter qkv;
  qkv.name = prefix + "w_qkv";
  qkv.global_shape = {c.d_model, 3, c.d_model};
  qkv.sharding = Sharding::TensorSplit(2);  // column-parallel: this rank's heads of q, k and v
  qkv.init_std = c.init_std;
  w_qkv_ = params->Add(std::move(qkv));
  Parameter out;
  out.name = prefix + "w_o";
  out.global_shape = {c.d_model, c.d_model};
  out.sharding = Sharding::TensorSplit(0);  // row-parallel: the rows of this rank's heads
  out.init_std = c.init_std / std::sqrt(2.0 * c.n_layers);
  w_o_ = params->Add(std::move(out));
}

// Shapes on one tp rank (H_l = H/tp heads, w = H_l·hd columns; tp = 1: H_l = H, w = d):
//   x [N, d] · W_qkv [d, 3w] → qkv [B, T, 3, H_l, hd] → a [B, T, H_l, hd] = [N, w]
//   a [N, w] · W_o [w, d] → partial y [N, d] → all-reduce over tp → y
void CausalSelfAttention::Forward(const Tensor& x, int64_t batch, int64_t seq, Tensor& y,
                                  ActivationArena& arena) {
  x_ = x;
  const int64_t tokens = batch * seq;
  qkv_ = arena.Allocate({batch, seq, 3, local_heads_, head_dim_}, params_->dtype());
  Tensor qkv_matrix = qkv_.Reshape({tokens, 3 * local_width_});
  ops::Gemm(x, false, (*params_)[w_qkv_].value.Reshape({d_model_, 3 * local_width_}), false,
            qkv_matrix);
  ops::RopeForward(qkv_, rope_theta_);
  attended_ = arena.Allocate({batch, seq, local_heads_, head_dim_}, params_->dtype());
  lse_ = arena.Allocate({batch, local_heads_, seq}, AccumulationDType(params_->dtype()));
  ops::CausalAttentionForward(qkv_, attended_, lse_);
  ops::Gemm(attended_.Reshape({tokens, local_width_}), false, (*params_)[w_o_].value, false, y);
  parallel::ReduceFromTensorParallelRegionForward(*tensor_parallel_, y);
}

// dy [N, d] is replicated over tp:
//   da = dy W_oᵀ [N, w],  dW_o += aᵀ dy,  dqkv from attention and RoPE backward,
//   dW_qkv += xᵀ dqkv,  dx += all-reduce over tp of (dqkv W_qkvᵀ)
void CausalSelfAttention::Backward(const Tensor& dy, Tensor& dx, ActivationArena& arena) {
  Parameter& w_o = (*params_)[w_o_];
  Parameter& w_qkv = (*params_)[w_qkv_];
  const int64_t tokens = dy.dim(0);
  Tensor d_attended = arena.Allocate(attended_.shape(), params_->dtype());
  Tensor d_attended_matrix = d_attended.Reshape({tokens, local_width_});
  ops::Gemm(dy, false, w_o.value, true, d_attended_matrix);
  ops::Gemm(attended_.Reshape({tokens, local_width_}), true, dy, false, w_o.grad, 1.0f, 1.0f);
  Tensor dqkv = arena.Allocate(qkv_.shape(), params_->dtype());
  ops::Fill(dqkv, 0.0);
  ops::CausalAttentionBackward(d_attended, qkv_, attended_, lse_, dqkv);
  ops::RopeBackward(dqkv, rope_theta_);
  const Tensor dqkv_matrix = dqkv.Reshape({tokens, 3 * local_width_});
  Tensor w_qkv_grad = w_qkv.grad.Reshape({d_model_, 3 * local_width_});
  ops::Gemm(x_, true, dqkv_matrix, false, w_qkv_grad, 1.0f, 1.0f);
  const Tensor w_qkv_value = w_qkv.value.Reshape({d_model_, 3 * local_width_});
  if (tensor_parallel_->size() == 1) {
    ops::Gemm(dqkv_matrix, false, w_qkv_value, true, dx, 1.0f, 1.0f);
    return;
  }
  // dx accumulates, so this rank's partial product is summed over tp before it is added.
  Tensor dx_partial = arena.Allocate(dx.shape(), params_->dtype());
  ops::Gemm(dqkv_matrix, false, w_qkv_value, true, dx_partial);
  parallel::CopyToTensorParallelRegionBackward(*tensor_parallel_, dx_partial);
  ops::AddInto(dx_partial, dx);
}

void CausalSelfAttention::Decode(const Tensor& x, int64_t batch, int64_t first, Tensor& cache,
                                 Tensor& y, ActivationArena& arena) {
  const int64_t tokens = x.dim(0), count = tokens / batch, capacity = cache.dim(1);
  const int64_t row = 3 * local_width_;
  Tensor qkv = arena.Allocate({batch, count, 3, local_heads_, head_dim_}, params_->dtype());
  Tensor qkv_matrix = qkv.Reshape({tokens, row});
  ops::Gemm(x, false, (*params_)[w_qkv_].value.Reshape({d_model_, row}), false, qkv_matrix);
  ops::RopeForward(qkv, rope_theta_, first);
  // The new rows into the cache: sequence b's positions [first, first + count).
  const Tensor new_rows = qkv.Reshape({tokens, row});
  const Tensor cache_rows = cache.Reshape({batch * capacity, row});
  for (int64_t b = 0; b < batch; ++b) {
    Tensor destination = cache_rows.Rows(b * capacity + first, b * capacity + first + count);
    ops::Copy(new_rows.Rows(b * count, (b + 1) * count), destination);
  }
  Tensor attended = arena.Allocate({batch, count, local_heads_, head_dim_}, params_->dtype());
  ops::CachedCausalAttention(cache, first, count, attended);
  ops::Gemm(attended.Reshape({tokens, local_width_}), false, (*params_)[w_o_].value, false, y);
  parallel::ReduceFromTensorParallelRegionForward(*tensor_parallel_, y);
}

}  // namespace aoetron
