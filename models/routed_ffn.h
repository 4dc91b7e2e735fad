// RoutedFeedForward: top-K mixture of SwiGLU experts in numbered stages (Megatron's token
// dispatcher), the same code for router MoE and AoE and for every parallel layout.
//
//   1. score      l = scorer(x)                     [N, n]   router logits or AoE norms (local)
//                 s = l, or σ(l) for the sigmoid router (ModelConfig::router_score)
//   2. select     I = topK(s + b), v = s[I]          [N, K]   ties: lower expert index wins;
//                                                             b: the expert bias (0 when off)
//   3. weigh      w = softmax(v)                    [N, K]   (AoE "release": w = softmax(s)[I];
//                                                             sigmoid router: w = v / Σ_K v)
//   4. balance    L_aux = α·n·Σ_i f_i·P_i over the GLOBAL micro-batch (f, P summed over dp),
//                 P_i = mean_t q_ti, q = softmax(l) (sigmoid router: q = s / Σ_n s);
//                 L_z = coeff · mean_t logsumexp(l_t)² (the router z-loss), global likewise
//   5. dispatch   pairs → their experts' ep ranks; x once per (token, rank), AoE's C_i per pair
//   6.            (parallel::ExpertDispatcher stages D1–D5; with ep = 1 a local permute)
//   7. experts    grouped SwiGLU GEMMs, one per local expert block
//   8. combine    outputs back (D6), y_t = Σ_j w_tj · out(t, j) on the source rank (D7)
//   9. shared     y += SwiGLU_shared(x) when the layer has shared experts (tensor-parallel like
//                 the dense FFN; every token, no routing)
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
//
// Aux-loss-free balancing (ModelConfig::expert_bias_rate > 0, DeepSeek-V3): b is the parameter
// `prefix`.expert_bias [n], f32, replicated, never given a gradient (Parameter::trainable), so
// checkpoints, resharding and export carry it like any weight. It moves only in
// UpdateExpertBias, once per optimizer step: b_i += rate · sign(mean_j load_j − load_i) with
// load_i the pairs routed to expert i over the step's micro-batches (global over dp: the
// statistics of stage 4), computed in double and rounded once — the same on every rank and
// every layout.
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
  double aux_loss() const override { return stats_.aux_loss + stats_.z_loss; }
  void UpdateExpertBias() override;
  // Routing statistics of the global micro-batch; dispatch traffic of this rank. The backward
  // exchange time is filled in by Backward.
  const ExpertLoadStats* stats() const override { return &stats_; }

 private:
  // Stage 1's s from the scorer's l: l itself, or σ(l) (kept in affinity_).
  Tensor ScoreFunction(const Tensor& logits, ActivationArena& arena);
  // Stage 2: I = topK(s + b), v = s[I].
  void Select(const Tensor& s, ActivationArena& arena);
  // Stage 3: q over all n, and the gate weights w from v.
  void Weigh(const Tensor& s, ActivationArena& arena);
  // Stage 4; z_sum: Σ_t lse_t² of this rank's tokens (0 without z-loss).
  void ComputeBalanceStatistics(double z_sum);
  // The gradient of stages 1–4 (gate weights, aux loss, z-loss) w.r.t. the scorer's output l.
  Tensor ScoreGradient(const Tensor& d_gate_weights, double loss_scale, ActivationArena& arena);
  // The expert bias b as host values (empty when off).
  std::vector<double> ExpertBias() const;

  ParameterSet* params_;
  int64_t n_experts_, top_k_;
  double aux_coeff_, capacity_factor_, z_coeff_, bias_rate_;
  bool gate_over_all_experts_;  // AoE "release" variant
  bool sigmoid_scores_;         // router_score sigmoid
  int expert_bias_ = -1;        // parameter index of b; -1 when off
  parallel::Communicator* data_parallel_;
  std::unique_ptr<ExpertScorer> scorer_;
  std::unique_ptr<GroupedSwiGluExperts> experts_;  // this rank's experts only
  std::unique_ptr<GroupedSwiGluExperts> shared_;   // the shared experts' SwiGLU; null when none
  std::unique_ptr<parallel::ExpertDispatcher> dispatcher_;
  std::vector<double> step_load_;  // pairs per expert since the last UpdateExpertBias (global)

  // Saved by Forward for Backward.
  Tensor x_, logits_, affinity_, lse_, top_values_, top_index_, gate_weights_, probs_all_;
  parallel::ExpertBatch batch_;
  std::vector<double> load_fraction_;  // f_i, global
  int64_t global_tokens_ = 0;          // T of the global micro-batch
  std::vector<int64_t> keep_limit_;    // per expert; empty when dropless
  ExpertLoadStats stats_;
};

}  // namespace aoetron
