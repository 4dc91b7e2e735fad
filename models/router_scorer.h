// RouterScorer: a learned linear router, scores = x W_r with W_r: [d, n] (replicated).
#pragma once

#include <string>

#include "models/expert_scorer.h"
#include "models/parameter.h"

namespace aoetron {

class RouterScorer final : public ExpertScorer {
 public:
  // Registers `prefix`.router.weight [d, n].
  RouterScorer(ParameterSet* params, const std::string& prefix, int64_t d_model, int64_t n_experts,
               double init_std);

  Tensor Forward(const Tensor& x, ActivationArena& arena) override;
  int64_t gate_input_width() const override { return d_model_; }
  int64_t gate_cache_width() const override { return 0; }
  // dW_r += xᵀ dscores,  dx += dscores W_rᵀ. d_gate_cache is unused (undefined).
  void Backward(const Tensor& dscores, Tensor& d_gate_cache, Tensor& dx,
                ActivationArena& arena) override;

 private:
  ParameterSet* params_;
  int64_t d_model_, n_experts_;
  int w_router_;
  Tensor x_;  // saved input
};

}  // namespace aoetron
