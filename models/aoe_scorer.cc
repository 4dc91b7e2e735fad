#include "models/aoe_scorer.h"

#include "core/ops/gemm.h"
#include "core/ops/grouped_l2_norm.h"

namespace aoetron {

AoeScorer::AoeScorer(ParameterSet* params, const std::string& prefix, int64_t d_model,
                     int64_t n_experts, int64_t d_low, double init_std)
    : params_(params), d_model_(d_model), n_experts_(n_experts), d_low_(d_low) {
  Parameter p;
  p.name = prefix + ".w_down";
  p.global_shape = {d_model, n_experts * d_low};
  p.init_std = init_std;
  w_down_ = params->Add(std::move(p));
}

Tensor AoeScorer::Forward(const Tensor& x, ActivationArena& arena) {
  const int64_t tokens = x.dim(0);
  x_ = x;
  c_ = arena.Allocate({tokens, n_experts_ * d_low_}, params_->dtype());
  ops::Gemm(x, false, (*params_)[w_down_].value, false, c_);
  norms_ = arena.Allocate({tokens, n_experts_}, AccumulationDType(params_->dtype()));
  ops::GroupedL2Norm(c_, d_low_, norms_);
  return norms_;
}

void AoeScorer::Backward(const Tensor& dscores, Tensor& d_gate_cache, Tensor& dx,
                         ActivationArena& arena) {
  AOETRON_CHECK(d_gate_cache.defined() && d_gate_cache.shape() == c_.shape())
      << "AoeScorer::Backward: d_gate_cache " << d_gate_cache.DebugString() << " for C "
      << c_.DebugString();
  Tensor& dc = d_gate_cache;  // path 2 (the selected experts' W_up) is already in it
  ops::GroupedL2NormBackward(dscores, c_, norms_, d_low_, dc);  // paths 1 and 3
  Parameter& w = (*params_)[w_down_];
  ops::Gemm(x_, true, dc, false, w.grad, 1.0f, 1.0f);
  ops::Gemm(dc, false, w.value, true, dx, 1.0f, 1.0f);
}

}  // namespace aoetron
