// DenseSwiGlu: the dense baseline FFN, y = (SiLU(x W_g) ⊙ (x W_p)) W_o with width d_ffn.
// It is GroupedSwiGluExperts with one expert that takes every row, so dense, MoE and AoE share
// one expert implementation — including its tensor-parallel split (d_ffn over tp: W_g and W_p
// column-parallel, W_o row-parallel, one all-reduce of [N, d] forward and one backward).
#pragma once

#include "models/feed_forward.h"
#include "models/grouped_swiglu_experts.h"

namespace aoetron {

class DenseSwiGlu final : public FeedForward {
 public:
  DenseSwiGlu(const ModelConfig& config, int layer, ParameterSet* params,
              parallel::ProcessGroups& groups);
  void Forward(const Tensor& x, Tensor& y, ActivationArena& arena) override;
  void Backward(const Tensor& dy, double loss_scale, Tensor& dx, ActivationArena& arena) override;

 private:
  GroupedSwiGluExperts mlp_;
};

}  // namespace aoetron
