#include "models/aoe_scorer.h"

#include "core/ops/elementwise.h"
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
  norms_ = arena.Allocate({tokens, n_experts_}, params_->dtype());
  ops::GroupedL2Norm(c_, d_low_, norms_);
  return norms_;
}

Tensor AoeScorer::ExpertGateInput(const Tensor& expert_index, const ops::ExpertLayout& layout,
                                  ActivationArena& arena) {
  Tensor gathered = arena.Allocate({layout.offsets.back(), d_low_}, params_->dtype());
  ops::GatherExpertSlices(c_, expert_index, layout.position, gathered);
  return gathered;
}

void AoeScorer::Backward(const Tensor& dscores, const Tensor& dgate_input,
                         const Tensor& expert_index, const ops::ExpertLayout& layout, Tensor& dx,
                         ActivationArena& arena) {
  Tensor dc = arena.Allocate(c_.shape(), params_->dtype());
  ops::Fill(dc, 0.0);
  ops::GatherExpertSlicesBackward(dgate_input, expert_index, layout.position, dc);
  ops::GroupedL2NormBackward(dscores, c_, norms_, d_low_, dc);
  Parameter& w = (*params_)[w_down_];
  ops::Gemm(x_, true, dc, false, w.grad, 1.0f, 1.0f);
  ops::Gemm(dc, false, w.value, true, dx, 1.0f, 1.0f);
}

}  // namespace aoetron
