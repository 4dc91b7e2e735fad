// RoutedFeedForward: top-K mixture of SwiGLU experts in numbered stages (Megatron's token
// dispatcher), the same code for router MoE and AoE and for every parallel layout.
//
//   1. score      s = scorer(x)                     [N, n]   router logits or AoE norms (local)
//   2. select     (v, I) = topK(s)                  [N, K]   ties: lower expert index wins
//   3. weigh      w = softmax(v)                    [N, K]   (AoE "release": w = softmax(s)[I])
//   4. balance    L_aux = α·n·Σ_i f_i·P_i over the GLOBAL micro-batch (f, P summed over dp)
//   5. dispatch   pairs → their experts' ep ranks; x once per (token, rank), AoE's C_i per pair
//   6.            (parallel::ExpertDispatcher stages D1–D5; with ep = 1 a local permute)
//   7. experts    grouped SwiGLU GEMMs, one per local expert block
//   8. combine    outputs back (D6), y_t = Σ_j w_tj · out(t, j) on the source rank (D7)
// Backward runs the stages in reverse. topK is piecewise constant: gradient reaches the scores
// through the gate weights (selected experts) and through P (all experts).
//
// Layout: the scorer (router W_r, or AoE's Ŵ_down [d, n·r]) is replicated and runs on every rank
// for its own tokens — stages 1–3 need no communication. This rank registers only its experts
// [first, first + n/ep) (ProcessGrid::LocalExperts), as Sharding::Expert(e); stage 4 all-reduces
// over the data-parallel group, stages 5–8 exchange over the expert-parallel group.
//
// Capacity (ModelConfig::capacity_factor > 0): expert e keeps the first ceil(cf·T·K/n) of its
// pairs in global token order (T: tokens of the global micro-batch), decided on the source ranks
// before the exchange, identically for every layout. A dropped pair contributes 0 to y_t; the
// token's gate weights are kept as computed (not renormalised over the surviving pairs), so a
// dropped pair's weight gets no gradient. f counts routing choices before drops.
#pragma once

#include <memory>
#include <vector>

#include "models/expert_scorer.h"
#include "models/feed_forward.h"
#include "models/grouped_swiglu_experts.h"
#include "parallel/expert_dispatcher.h"

namespace aoetron {

class RoutedFeedForward final : public FeedForward {
 public:
  // Collective when the model is laid out over several ranks: every rank of `groups` constructs
  // its layers alike. CHECKs that ep divides n_experts.
  RoutedFeedForward(const ModelConfig& config, int layer, ParameterSet* params,
                    parallel::ProcessGroups& groups);

  // Collective over dp (stage 4) and ep (stages 5–8) when they have more than one rank.
  void Forward(const Tensor& x, Tensor& y, ActivationArena& arena) override;
  void Backward(const Tensor& dy, double loss_scale, Tensor& dx, ActivationArena& arena) override;
  double aux_loss() const override { return stats_.aux_loss; }
  // Routing statistics of the global micro-batch; dispatch traffic of this rank. The backward
  // exchange time is filled in by Backward.
  const ExpertLoadStats* stats() const override { return &stats_; }

 private:
  void ComputeBalanceStatistics();

  int64_t n_experts_, top_k_;
  double aux_coeff_, capacity_factor_;
  bool gate_over_all_experts_;  // AoE "release" variant
  parallel::Communicator* data_parallel_;
  std::unique_ptr<ExpertScorer> scorer_;
  std::unique_ptr<GroupedSwiGluExperts> experts_;  // this rank's experts only
  std::unique_ptr<parallel::ExpertDispatcher> dispatcher_;

  // Saved by Forward for Backward.
  Tensor x_, top_values_, top_index_, gate_weights_, probs_all_;
  parallel::ExpertBatch batch_;
  std::vector<double> load_fraction_;  // f_i, global
  int64_t global_tokens_ = 0;          // T of the global micro-batch
  std::vector<int64_t> keep_limit_;    // per expert; empty when dropless
  ExpertLoadStats stats_;
};

}  // namespace aoetron
