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
  bool gates_on_x() const override { return true; }
  int64_t gate_input_width() const override { return d_model_; }
  // dW_r += xᵀ dscores,  dx += dscores W_rᵀ.
  void Backward(const Tensor& dscores, const Tensor& dgate_input, const Tensor& expert_index,
                const ops::ExpertLayout& layout, Tensor& dx, ActivationArena& arena) override;

 private:
  ParameterSet* params_;
  int64_t d_model_, n_experts_;
  int w_router_;
  Tensor x_;  // saved input
};

}  // namespace aoetron
