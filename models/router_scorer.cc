#include "models/router_scorer.h"

#include "core/ops/elementwise.h"
#include "core/ops/gemm.h"

namespace aoetron {

RouterScorer::RouterScorer(ParameterSet* params, const std::string& prefix, int64_t d_model,
                           int64_t n_experts, double init_std)
    : params_(params), d_model_(d_model), n_experts_(n_experts) {
  Parameter p;
  p.name = prefix + ".router.weight";
  p.global_shape = {d_model, n_experts};
  p.init_std = init_std;
  w_router_ = params->Add(std::move(p));
}

Tensor RouterScorer::Forward(const Tensor& x, ActivationArena& arena) {
  x_ = x;
  // Scores in f32 beside bf16 activations (routing decisions from bf16-rounded logits would
  // tie and flip): the GEMM writes an f32 C from bf16 operands.
  Tensor logits = arena.Allocate({x.dim(0), n_experts_}, AccumulationDType(params_->dtype()));
  ops::Gemm(x, false, (*params_)[w_router_].value, false, logits);
  return logits;
}

void RouterScorer::Backward(const Tensor& dscores, Tensor& d_gate_cache, Tensor& dx,
                            ActivationArena& arena) {
  Parameter& w = (*params_)[w_router_];
  // The GEMMs multiply operands of one dtype: the f32 score gradient is rounded to the
  // activations' dtype (bf16) first, as the input of any bf16 GEMM.
  Tensor dlogits = dscores;
  if (dscores.dtype() != x_.dtype()) {
    dlogits = arena.Allocate(dscores.shape(), x_.dtype());
    ops::Convert(dscores, dlogits);
  }
  ops::Gemm(x_, true, dlogits, false, w.grad, 1.0f, 1.0f);
  ops::Gemm(dlogits, false, w.value, true, dx, 1.0f, 1.0f);
}

}  // namespace aoetron
