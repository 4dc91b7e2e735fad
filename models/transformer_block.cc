#include "models/transformer_block.h"

#include <string>

#include "core/ops/elementwise.h"
#include "core/ops/rmsnorm.h"

namespace aoetron {
namespace {

int AddNormWeight(ParameterSet* params, const std::string& name, int64_t d_model) {
  Parameter p;
  p.name = name;
  p.global_shape = {d_model};
  p.weight_decay = false;
  p.init_value = 1.0;
  return params->Add(std::move(p));
}

}  // namespace

TransformerBlock::TransformerBlock(const ModelConfig& c, int layer, ParameterSet* params,
                                   parallel::ProcessGroups& groups)
    : params_(params),
      norm_eps_(static_cast<float>(c.norm_eps)),
      attn_norm_(AddNormWeight(params, "layers." + std::to_string(layer) + ".attn_norm.weight",
                               c.d_model)),
      ffn_norm_(
          AddNormWeight(params, "layers." + std::to_string(layer) + ".ffn_norm.weight", c.d_model)),
      attention_(c, layer, params, groups),
      ffn_(MakeFeedForward(c, layer, params, groups)) {}

void TransformerBlock::Forward(const Tensor& x_in, int64_t batch, int64_t seq, Tensor& x_out,
                               ActivationArena& arena) {
  const int64_t tokens = x_in.dim(0), d = x_in.dim(1);
  x_in_ = x_in;
  h1_ = arena.Allocate({tokens, d}, params_->dtype());
  rstd1_ = arena.Allocate({tokens}, AccumulationDType(params_->dtype()));
  ops::RmsNormForward(x_in, (*params_)[attn_norm_].value, norm_eps_, h1_, rstd1_);
  x_mid_ = arena.Allocate({tokens, d}, params_->dtype());
  attention_.Forward(h1_, batch, seq, x_mid_, arena);
  ops::AddInto(x_in, x_mid_);
  h2_ = arena.Allocate({tokens, d}, params_->dtype());
  rstd2_ = arena.Allocate({tokens}, AccumulationDType(params_->dtype()));
  ops::RmsNormForward(x_mid_, (*params_)[ffn_norm_].value, norm_eps_, h2_, rstd2_);
  ffn_->Forward(h2_, x_out, arena);
  ops::AddInto(x_mid_, x_out);
}

void TransformerBlock::Backward(const Tensor& dx_out, double loss_scale, Tensor& dx_in,
                                ActivationArena& arena) {
  const int64_t tokens = x_in_.dim(0), d = x_in_.dim(1);
  Parameter& ffn_norm = (*params_)[ffn_norm_];
  Parameter& attn_norm = (*params_)[attn_norm_];
  // FFN branch: d x_mid = dx_out + RMSNorm'(FFN'(dx_out)).
  Tensor dh2 = arena.Allocate({tokens, d}, params_->dtype());
  ops::Fill(dh2, 0.0);
  ffn_->Backward(dx_out, loss_scale, dh2, arena);
  Tensor dx_mid = arena.Allocate({tokens, d}, params_->dtype());
  ops::Copy(dx_out, dx_mid);
  ops::RmsNormBackward(dh2, x_mid_, ffn_norm.value, rstd2_, dx_mid, ffn_norm.grad);
  // Attention branch: d x_in = d x_mid + RMSNorm'(Attention'(d x_mid)).
  Tensor dh1 = arena.Allocate({tokens, d}, params_->dtype());
  ops::Fill(dh1, 0.0);
  attention_.Backward(dx_mid, dh1, arena);
  ops::Copy(dx_mid, dx_in);
  ops::RmsNormBackward(dh1, x_in_, attn_norm.value, rstd1_, dx_in, attn_norm.grad);
}

void TransformerBlock::Decode(const Tensor& x_in, int64_t batch, int64_t first, Tensor& cache,
                              Tensor& x_out, ActivationArena& arena) {
  const int64_t tokens = x_in.dim(0), d = x_in.dim(1);
  const DType dtype = params_->dtype();
  Tensor h1 = arena.Allocate({tokens, d}, dtype);
  Tensor rstd = arena.Allocate({tokens}, AccumulationDType(dtype));
  ops::RmsNormForward(x_in, (*params_)[attn_norm_].value, norm_eps_, h1, rstd);
  Tensor x_mid = arena.Allocate({tokens, d}, dtype);
  attention_.Decode(h1, batch, first, cache, x_mid, arena);
  ops::AddInto(x_in, x_mid);
  Tensor h2 = arena.Allocate({tokens, d}, dtype);
  ops::RmsNormForward(x_mid, (*params_)[ffn_norm_].value, norm_eps_, h2, rstd);
  ffn_->Forward(h2, x_out, arena);
  ops::AddInto(x_mid, x_out);
}

}  // namespace aoetron
