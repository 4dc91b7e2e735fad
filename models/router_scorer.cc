#include "models/router_scorer.h"

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
  Tensor logits = arena.Allocate({x.dim(0), n_experts_}, params_->dtype());
  ops::Gemm(x, false, (*params_)[w_router_].value, false, logits);
  return logits;
}

void RouterScorer::Backward(const Tensor& dscores, Tensor& d_gate_cache, Tensor& dx,
                            ActivationArena& arena) {
  Parameter& w = (*params_)[w_router_];
  ops::Gemm(x_, true, dscores, false, w.grad, 1.0f, 1.0f);
  ops::Gemm(dscores, false, w.value, true, dx, 1.0f, 1.0f);
}

}  // namespace aoetron
