#include "models/routed_ffn.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "core/ops/elementwise.h"
#include "core/ops/routing_statistics.h"
#include "core/ops/softmax.h"
#include "core/ops/topk.h"
#include "models/aoe_scorer.h"
#include "models/router_scorer.h"
#include "parallel/dispatch_layout.h"

namespace aoetron {

RoutedFeedForward::RoutedFeedForward(const ModelConfig& c, int layer, ParameterSet* params,
                                     parallel::ProcessGroups& groups)
    : n_experts_(c.n_experts),
      top_k_(c.top_k),
      aux_coeff_(c.aux_loss_coeff),
      capacity_factor_(c.capacity_factor),
      gate_over_all_experts_(c.ffn == FfnKind::kAoe && c.aoe_gate == AoeGateVariant::kRelease),
      data_parallel_(&groups.Host(parallel::GroupKind::kDataParallel)) {
  const std::string prefix = "layers." + std::to_string(layer) + ".ffn";
  const bool aoe = c.ffn == FfnKind::kAoe;
  if (aoe) {
    scorer_ = std::make_unique<AoeScorer>(params, prefix, c.d_model, c.n_experts, c.d_low,
                                          c.init_std, c.aoe_memory, c.aoe_score_block);
  } else {
    scorer_ = std::make_unique<RouterScorer>(params, prefix, c.d_model, c.n_experts, c.init_std);
  }
  // Only this rank's experts are registered (and held): the ep rank's contiguous block.
  const absl::StatusOr<parallel::ExpertShard> shard =
      groups.grid().LocalExperts(static_cast<int>(c.n_experts));
  AOETRON_CHECK(shard.ok()) << "model.n_experts (" << c.n_experts
                            << ") must be divisible by parallel.ep (" << groups.grid().ep_size()
                            << "): " << shard.status().message();
  std::vector<std::string> prefixes;
  std::vector<Sharding> shardings;
  for (int e = shard->first; e < shard->first + shard->count; ++e) {
    prefixes.push_back(prefix + ".experts." + std::to_string(e));
    shardings.push_back(Sharding::Expert(e));
  }
  experts_ = std::make_unique<GroupedSwiGluExperts>(
      params, groups.tensor_parallel(), prefixes, aoe ? "w_up" : "w_g", c.d_model,
      scorer_->gate_input_width(), c.ExpertWidth(), c.init_std,
      c.init_std / std::sqrt(2.0 * c.n_layers), shardings);
  dispatcher_ = parallel::MakeExpertDispatcher(groups.expert_parallel(),
                                               groups.Host(parallel::GroupKind::kExpertParallel),
                                               c.n_experts, c.d_model, scorer_->gate_cache_width());
  AOETRON_CHECK_EQ(dispatcher_->first_local_expert(), shard->first);
}

void RoutedFeedForward::Forward(const Tensor& x, Tensor& y, ActivationArena& arena) {
  const int64_t tokens = x.dim(0);
  x_ = x;
  // 1. score
  Tensor scores = scorer_->Forward(x, arena);
  // 2. select
  // Scores, probabilities and gate weights are in the scores' dtype (f32 beside bf16).
  const DType score_dtype = scores.dtype();
  top_values_ = arena.Allocate({tokens, top_k_}, score_dtype);
  top_index_ = arena.Allocate({tokens, top_k_}, DType::kI32);
  ops::TopK(scores, top_k_, top_values_, top_index_);
  // 3. weigh (softmax over all n is needed anyway for the aux loss and Ent_conf)
  probs_all_ = arena.Allocate({tokens, n_experts_}, score_dtype);
  ops::RowSoftmaxForward(scores, probs_all_);
  gate_weights_ = arena.Allocate({tokens, top_k_}, score_dtype);
  if (gate_over_all_experts_) {
    ops::TakeAlongRows(probs_all_, top_index_, gate_weights_);  // w = q[I]
  } else {
    ops::RowSoftmaxForward(top_values_, gate_weights_);
  }
  // 4. balance (global over the data-parallel group; also the capacity's keep limits)
  ComputeBalanceStatistics();
  // 5.–6. dispatch: layout, permute, all-to-all, regroup by local expert
  const Tensor gate_cache = scorer_->SelectedGateCache(top_index_, arena);  // [N, K·r] by slot
  batch_ = dispatcher_->Dispatch(x, top_index_, gate_cache, keep_limit_, arena);
  // 7. experts
  experts_->Forward(batch_.x, batch_.gate, batch_.offsets, batch_.out, arena);
  // 8. combine: outputs back to this rank, weighted sum in token order
  dispatcher_->Combine(gate_weights_, y, arena);
  stats_.dispatch = dispatcher_->stats();
}

// Global over the data-parallel group (every rank's micro-batch together, T_g tokens):
//   f_i = count_i / T_g (Σ f = K),  P_i = (1/T_g) Σ_t q_ti  with q = softmax over all n scores.
// One f64 all-reduce carries [counts | Σ_t q_t | tokens | Σ_t H(q_t)] (ops::RoutingStatistics,
// on the host: 2n + 2 numbers); with a capacity factor, an all-gather of the counts gives each
// rank the pairs of earlier ranks (KeepLimits).
void RoutedFeedForward::ComputeBalanceStatistics() {
  const int64_t n = n_experts_;
  std::vector<double> sums = ops::RoutingStatistics(top_index_, probs_all_);
  const double* count_sum = sums.data();
  const double* prob_sum = sums.data() + n;
  std::vector<int64_t> local_counts(n);
  for (int64_t i = 0; i < n; ++i) local_counts[i] = static_cast<int64_t>(count_sum[i]);
  if (data_parallel_->size() > 1) {
    data_parallel_->AllReduce(Tensor::Wrap(sums.data(), {2 * n + 2}, DType::kF64),
                              parallel::ReduceOp::kSum);
  }
  global_tokens_ = static_cast<int64_t>(sums[2 * n]);
  const double global_tokens = sums[2 * n];

  load_fraction_.assign(n, 0.0);
  stats_ = ExpertLoadStats{};
  stats_.tokens_per_expert.resize(n);
  double aux = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    stats_.tokens_per_expert[i] = static_cast<int64_t>(count_sum[i]);
    load_fraction_[i] = count_sum[i] / global_tokens;
    const double mean_prob = prob_sum[i] / global_tokens;
    aux += load_fraction_[i] * mean_prob;
  }
  // f̂_i = f_i / K = count_i / (T_g·K), Σ f̂ = 1.
  const LoadShareSummary shares = SummariseLoadShares(stats_.tokens_per_expert);
  stats_.load_fraction_min = shares.min;
  stats_.load_fraction_max = shares.max;
  stats_.entropy_load = shares.entropy;
  stats_.entropy_confidence = sums[2 * n + 1] / global_tokens;
  stats_.aux_loss = aux_coeff_ * n * aux;

  // The ep ranks' loads: pairs for each rank's block of experts.
  stats_.ep_load_max_over_mean =
      EpLoadMaxOverMean(stats_.tokens_per_expert, n / dispatcher_->local_experts());

  keep_limit_.clear();
  if (capacity_factor_ > 0) {
    const int64_t capacity = parallel::ExpertCapacity(capacity_factor_, global_tokens_, top_k_, n);
    const int dp = data_parallel_->size();
    std::vector<int64_t> counts_by_rank(static_cast<size_t>(dp) * n);
    if (dp > 1) {
      data_parallel_->AllGather(Tensor::Wrap(local_counts.data(), {n}, DType::kI64),
                                Tensor::Wrap(counts_by_rank.data(), {dp, n}, DType::kI64));
    } else {
      counts_by_rank = local_counts;
    }
    keep_limit_ = parallel::KeepLimits(counts_by_rank, n, data_parallel_->rank(), capacity);
    for (int64_t i = 0; i < n; ++i) {
      stats_.dropped_pairs += std::max<int64_t>(0, stats_.tokens_per_expert[i] - capacity);
    }
  }
}

void RoutedFeedForward::Backward(const Tensor& dy, double loss_scale, Tensor& dx,
                                 ActivationArena& arena) {
  const int64_t tokens = x_.dim(0);
  // 8'. combine: dY per pair back to the experts' ranks, and dL/dw
  const DType score_dtype = probs_all_.dtype();
  Tensor d_gate_weights = arena.Allocate({tokens, top_k_}, score_dtype);
  ops::Fill(d_gate_weights, 0.0);
  parallel::ExpertBatchGradients grads =
      dispatcher_->CombineBackward(dy, gate_weights_, d_gate_weights, arena);
  // 7'. experts
  experts_->Backward(grads.d_out, grads.dx, grads.dgate, arena);
  // 6'.–5'. dX per distinct token and AoE's dC per pair back to this rank
  Tensor d_gate_cache;
  if (scorer_->gate_cache_width() > 0) {
    d_gate_cache = arena.Allocate({tokens, top_k_ * scorer_->gate_cache_width()}, x_.dtype());
    ops::Fill(d_gate_cache, 0.0);
  }
  dispatcher_->DispatchBackward(grads, dx, d_gate_cache, arena);
  stats_.dispatch.backward_exchange_seconds = dispatcher_->stats().backward_exchange_seconds;
  // 3'. and 4'. — gradient of the scores through the gate weights and through P.
  Tensor dscores = arena.Allocate({tokens, n_experts_}, score_dtype);
  ops::Fill(dscores, 0.0);
  Tensor dprobs_all = arena.Allocate({tokens, n_experts_}, score_dtype);
  ops::Fill(dprobs_all, 0.0);
  if (gate_over_all_experts_) {
    ops::TopKBackward(d_gate_weights, top_index_, dprobs_all);  // w = q[I]: scatter-add
  } else {
    Tensor d_top_values = arena.Allocate({tokens, top_k_}, score_dtype);
    ops::Fill(d_top_values, 0.0);
    ops::RowSoftmaxBackward(d_gate_weights, gate_weights_, d_top_values);
    ops::TopKBackward(d_top_values, top_index_, dscores);  // 2'. select
  }
  if (aux_coeff_ > 0) {
    // ∂(α·n·Σ f_i P_i)/∂q_ti = α·n·f_i / T_g for every token t of the global micro-batch
    // (f is a constant). Why the extra factor dp: the trainer gives each of the dp ranks
    // loss_scale = 1/(micro-batches · dp) and SUMS the gradients over dp, which turns the
    // per-rank mean CE into the global mean. L_aux is not a per-rank mean: it is one loss of the
    // global micro-batch, the same on every rank, and each token's q_t lives on exactly one rank.
    // Summed over dp, Σ_r (loss_scale·dp)·∂L_aux/∂q_{t∈r} = (1/micro-batches)·∂L_aux/∂q for every
    // token — what one process running the global micro-batch computes. (dp = 1: no change.)
    const double shared_loss_scale = loss_scale * data_parallel_->size();
    std::vector<double> dq_row(n_experts_);
    for (int64_t i = 0; i < n_experts_; ++i) {
      dq_row[i] = shared_loss_scale * aux_coeff_ * n_experts_ * load_fraction_[i] / global_tokens_;
    }
    ops::AddRowVector(dq_row, dprobs_all);
  }
  if (gate_over_all_experts_ || aux_coeff_ > 0) {
    ops::RowSoftmaxBackward(dprobs_all, probs_all_, dscores);
  }
  // 1'. score
  scorer_->Backward(dscores, d_gate_cache, dx, arena);
}

}  // namespace aoetron
