// RoutedFeedForward: top-K mixture of SwiGLU experts, dropless, in numbered stages
// (Megatron's token dispatcher, single-process form; parallel/ adds the all-to-alls between
// stages 5 and 7 and between 7 and 8).
//
//   1. score      s = scorer(x)                     [N, n]   router logits or AoE norms
//   2. select     (v, I) = topK(s)                  [N, K]   ties: lower expert index wins
//   3. weigh      w = softmax(v)                    [N, K]   (AoE "release": w = softmax(s)[I])
//   4. balance    L_aux = α·n·Σ_i f_i·P_i,  f_i = count_i / N,  P_i = mean_t softmax(s_t)_i
//   5. layout     pairs (t, j) grouped by expert, in token order inside each expert block
//   6. permute    x_perm = x[pair's token]           [M = N·K, d]; AoE also gathers C_i
//   7. experts    grouped SwiGLU GEMMs, one per expert block
//   8. combine    y_t = Σ_j w_tj · out[pair (t, j)]
// Backward runs the stages in reverse. topK is piecewise constant: gradient reaches the scores
// through the gate weights (selected experts) and through P (all experts).
#pragma once

#include <memory>
#include <vector>

#include "core/ops/expert_permute.h"
#include "models/expert_scorer.h"
#include "models/feed_forward.h"
#include "models/grouped_swiglu_experts.h"

namespace aoetron {

class RoutedFeedForward final : public FeedForward {
 public:
  RoutedFeedForward(const ModelConfig& config, int layer, ParameterSet* params,
                    parallel::ProcessGroups& groups);

  void Forward(const Tensor& x, Tensor& y, ActivationArena& arena) override;
  void Backward(const Tensor& dy, double loss_scale, Tensor& dx, ActivationArena& arena) override;
  double aux_loss() const override { return stats_.aux_loss; }
  const ExpertLoadStats* stats() const override { return &stats_; }

 private:
  void ComputeBalanceStatistics();

  int64_t n_experts_, top_k_;
  double aux_coeff_;
  bool gate_over_all_experts_;  // AoE "release" variant
  std::unique_ptr<ExpertScorer> scorer_;
  std::unique_ptr<GroupedSwiGluExperts> experts_;

  // Saved by Forward for Backward.
  Tensor x_, top_values_, top_index_, gate_weights_, probs_all_, x_perm_, gate_input_, out_perm_;
  ops::ExpertLayout layout_;
  std::vector<double> load_fraction_;  // f_i
  ExpertLoadStats stats_;
};

}  // namespace aoetron
