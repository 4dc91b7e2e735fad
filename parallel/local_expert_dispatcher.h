// LocalExpertDispatcher: the ExpertDispatcher of an ep group of one (parallel/expert_dispatcher.h).
// D1 groups the pairs by expert (ops::BuildExpertLayout, token order inside a block, dropped
// pairs after every block); D3/D5 gather x and the gate rows straight into the expert blocks;
// D2, D4 and D6 are nothing; D7 combines from the blocks. Backward mirrors it with the ops'
// backward. Nothing is copied twice or communicated.
#pragma once

#include "core/ops/expert_permute.h"
#include "parallel/expert_dispatcher.h"

namespace aoetron::parallel {

class LocalExpertDispatcher final : public ExpertDispatcher {
 public:
  LocalExpertDispatcher(int64_t num_experts, int64_t d_model, int64_t gate_width);

  void Combine(const Tensor& gate_weights, Tensor& y, ActivationArena& arena) override;
  ExpertBatchGradients CombineBackward(const Tensor& dy, const Tensor& gate_weights,
                                       Tensor& d_gate_weights, ActivationArena& arena) override;
  void DispatchBackward(const ExpertBatchGradients& grads, Tensor& dx, Tensor& d_gate_cache,
                        ActivationArena& arena) override;

 private:
  void DispatchStages(std::span<const int64_t> keep_limit, ActivationArena& arena) override;

  // Pairs grouped by expert; rows past offsets.back() are dropped pairs.
  ops::ExpertLayout layout_;
  Tensor x_grouped_full_, out_grouped_full_;     // [N·K, d]
  Tensor dx_grouped_full_, dgate_grouped_full_;  // [N·K, d], [N·K, g]
};

}  // namespace aoetron::parallel
