#include "models/routed_ffn.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "core/ops/elementwise.h"
#include "core/ops/float_visit.h"
#include "core/ops/softmax.h"
#include "core/ops/topk.h"
#include "models/aoe_scorer.h"
#include "models/router_scorer.h"

namespace aoetron {

RoutedFeedForward::RoutedFeedForward(const ModelConfig& c, int layer, ParameterSet* params,
                                     parallel::ProcessGroups& groups)
    : n_experts_(c.n_experts),
      top_k_(c.top_k),
      aux_coeff_(c.aux_loss_coeff),
      gate_over_all_experts_(c.ffn == FfnKind::kAoe && c.aoe_gate == AoeGateVariant::kRelease) {
  const std::string prefix = "layers." + std::to_string(layer) + ".ffn";
  const bool aoe = c.ffn == FfnKind::kAoe;
  if (aoe) {
    scorer_ =
        std::make_unique<AoeScorer>(params, prefix, c.d_model, c.n_experts, c.d_low, c.init_std);
  } else {
    scorer_ = std::make_unique<RouterScorer>(params, prefix, c.d_model, c.n_experts, c.init_std);
  }
  std::vector<std::string> prefixes;
  std::vector<Sharding> shardings;
  for (int64_t e = 0; e < c.n_experts; ++e) {
    prefixes.push_back(prefix + ".experts." + std::to_string(e));
    shardings.push_back(Sharding::Expert(static_cast<int>(e)));
  }
  experts_ = std::make_unique<GroupedSwiGluExperts>(
      params, groups.tensor_parallel(), prefixes, aoe ? "w_up" : "w_g", c.d_model,
      scorer_->gate_input_width(), c.ExpertWidth(), c.init_std,
      c.init_std / std::sqrt(2.0 * c.n_layers), shardings);
}

void RoutedFeedForward::Forward(const Tensor& x, Tensor& y, ActivationArena& arena) {
  const int64_t tokens = x.dim(0), d = x.dim(1);
  x_ = x;
  // 1. score
  Tensor scores = scorer_->Forward(x, arena);
  // 2. select
  top_values_ = arena.Allocate({tokens, top_k_}, x_.dtype());
  top_index_ = arena.Allocate({tokens, top_k_}, DType::kI32);
  ops::TopK(scores, top_k_, top_values_, top_index_);
  // 3. weigh (softmax over all n is needed anyway for the aux loss and Ent_conf)
  probs_all_ = arena.Allocate({tokens, n_experts_}, x_.dtype());
  ops::RowSoftmaxForward(scores, probs_all_);
  gate_weights_ = arena.Allocate({tokens, top_k_}, x_.dtype());
  if (gate_over_all_experts_) {
    VisitFloatData(probs_all_, [&](const auto* probs) {
      using F = std::remove_const_t<std::remove_pointer_t<decltype(probs)>>;
      const int32_t* index = top_index_.data<int32_t>();
      F* w = gate_weights_.data<F>();
      for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t j = 0; j < top_k_; ++j) {
          w[t * top_k_ + j] = probs[t * n_experts_ + index[t * top_k_ + j]];
        }
      }
    });
  } else {
    ops::RowSoftmaxForward(top_values_, gate_weights_);
  }
  // 5. layout (4, the balance statistics, needs its counts)
  layout_ = ops::BuildExpertLayout(top_index_, n_experts_);
  ComputeBalanceStatistics();
  // 6. permute
  const int64_t pairs = tokens * top_k_;
  x_perm_ = arena.Allocate({pairs, d}, x_.dtype());
  ops::PermuteRows(x, layout_.position, x_perm_);
  gate_input_ =
      scorer_->gates_on_x() ? x_perm_ : scorer_->ExpertGateInput(top_index_, layout_, arena);
  // 7. experts
  out_perm_ = arena.Allocate({pairs, d}, x_.dtype());
  experts_->Forward(x_perm_, gate_input_, layout_.offsets, out_perm_, arena);
  // 8. combine
  ops::CombineRows(out_perm_, layout_.position, gate_weights_, y);
}

// f_i = count_i / N (Σ f = K), P_i = mean_t q_ti with q = softmax over all n scores.
void RoutedFeedForward::ComputeBalanceStatistics() {
  const int64_t tokens = probs_all_.dim(0);
  std::vector<double> mean_prob(n_experts_, 0.0);
  double confidence_entropy = 0.0;
  VisitFloatData(probs_all_, [&](const auto* q) {
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t i = 0; i < n_experts_; ++i) {
        const double p = q[t * n_experts_ + i];
        mean_prob[i] += p;
        if (p > 0) confidence_entropy -= p * std::log(p);
      }
    }
  });
  load_fraction_.assign(n_experts_, 0.0);
  stats_ = ExpertLoadStats{};
  stats_.tokens_per_expert = layout_.counts;
  stats_.load_fraction_min = 1.0;
  double aux = 0.0;
  for (int64_t i = 0; i < n_experts_; ++i) {
    load_fraction_[i] = static_cast<double>(layout_.counts[i]) / tokens;
    mean_prob[i] /= tokens;
    aux += load_fraction_[i] * mean_prob[i];
    const double share = load_fraction_[i] / top_k_;  // f̂_i, Σ f̂ = 1
    stats_.load_fraction_min = std::min(stats_.load_fraction_min, share);
    stats_.load_fraction_max = std::max(stats_.load_fraction_max, share);
    if (share > 0) stats_.entropy_load -= share * std::log(share);
  }
  stats_.entropy_confidence = confidence_entropy / tokens;
  stats_.aux_loss = aux_coeff_ * n_experts_ * aux;
}

void RoutedFeedForward::Backward(const Tensor& dy, double loss_scale, Tensor& dx,
                                 ActivationArena& arena) {
  const int64_t tokens = x_.dim(0), pairs = x_perm_.dim(0), d = x_.dim(1);
  // 8'. combine
  Tensor d_out_perm = arena.Allocate({pairs, d}, x_.dtype());
  Tensor d_gate_weights = arena.Allocate({tokens, top_k_}, x_.dtype());
  ops::Fill(d_out_perm, 0.0);
  ops::Fill(d_gate_weights, 0.0);
  ops::CombineRowsBackward(dy, out_perm_, layout_.position, gate_weights_, d_out_perm,
                           d_gate_weights);
  // 7'. experts
  Tensor dx_perm = arena.Allocate({pairs, d}, x_.dtype());
  ops::Fill(dx_perm, 0.0);
  Tensor d_gate_input = dx_perm;
  if (!scorer_->gates_on_x()) {
    d_gate_input = arena.Allocate(gate_input_.shape(), x_.dtype());
    ops::Fill(d_gate_input, 0.0);
  }
  experts_->Backward(d_out_perm, dx_perm, d_gate_input, arena);
  // 6'. permute
  ops::PermuteRowsBackward(dx_perm, layout_.position, dx);
  // 3'. and 4'. — gradient of the scores through the gate weights and through P.
  Tensor dscores = arena.Allocate({tokens, n_experts_}, x_.dtype());
  ops::Fill(dscores, 0.0);
  Tensor dprobs_all = arena.Allocate({tokens, n_experts_}, x_.dtype());
  ops::Fill(dprobs_all, 0.0);
  if (gate_over_all_experts_) {
    ops::TopKBackward(d_gate_weights, top_index_, dprobs_all);  // w = q[I]: scatter-add
  } else {
    Tensor d_top_values = arena.Allocate({tokens, top_k_}, x_.dtype());
    ops::Fill(d_top_values, 0.0);
    ops::RowSoftmaxBackward(d_gate_weights, gate_weights_, d_top_values);
    ops::TopKBackward(d_top_values, top_index_, dscores);  // 2'. select
  }
  if (aux_coeff_ > 0) {
    // ∂(α·n·Σ f_i P_i)/∂q_ti = α·n·f_i / N for every token t (f is a constant).
    std::vector<double> dq_row(n_experts_);
    for (int64_t i = 0; i < n_experts_; ++i) {
      dq_row[i] = loss_scale * aux_coeff_ * n_experts_ * load_fraction_[i] / tokens;
    }
    VisitFloatData(dprobs_all, [&](auto* dq) {
      for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t i = 0; i < n_experts_; ++i) dq[t * n_experts_ + i] += dq_row[i];
      }
    });
  }
  if (gate_over_all_experts_ || aux_coeff_ > 0) {
    ops::RowSoftmaxBackward(dprobs_all, probs_all_, dscores);
  }
  // 1'. score
  scorer_->Backward(dscores, scorer_->gates_on_x() ? Tensor() : d_gate_input, top_index_, layout_,
                    dx, arena);
}

}  // namespace aoetron
