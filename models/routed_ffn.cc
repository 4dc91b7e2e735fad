#include "models/routed_ffn.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "core/device_transfer.h"
#include "core/ops/elementwise.h"
#include "core/ops/float_visit.h"
#include "core/ops/router_scores.h"
#include "core/ops/routing_statistics.h"
#include "core/ops/softmax.h"
#include "core/ops/topk.h"
#include "models/aoe_scorer.h"
#include "models/router_scorer.h"
#include "parallel/dispatch_layout.h"

namespace aoetron {

RoutedFeedForward::RoutedFeedForward(const ModelConfig& c, int layer, ParameterSet* params,
                                     parallel::ProcessGroups& groups)
    : params_(params),
      n_experts_(c.n_experts),
      top_k_(c.top_k),
      aux_coeff_(c.aux_loss_coeff),
      capacity_factor_(c.capacity_factor),
      z_coeff_(c.z_loss_coeff),
      bias_rate_(c.expert_bias_rate),
      gate_over_all_experts_(c.ffn == FfnKind::kAoe && c.aoe_gate == AoeGateVariant::kRelease),
      sigmoid_scores_(c.ffn == FfnKind::kRouterMoe && c.router_score == RouterScore::kSigmoid),
      data_parallel_(&groups.Host(parallel::GroupKind::kDataParallel)) {
  const std::string prefix = "layers." + std::to_string(layer) + ".ffn";
  const bool aoe = c.ffn == FfnKind::kAoe;
  if (aoe) {
    scorer_ = std::make_unique<AoeScorer>(params, prefix, c.d_model, c.n_experts, c.d_low,
                                          c.init_std, c.aoe_memory, c.aoe_score_block);
  } else {
    scorer_ = std::make_unique<RouterScorer>(params, prefix, c.d_model, c.n_experts, c.init_std);
  }
  if (c.has_expert_bias()) {
    Parameter bias;
    bias.name = prefix + ".expert_bias";
    bias.global_shape = {c.n_experts};
    bias.weight_decay = false;
    bias.trainable = false;
    bias.init_value = 0.0;
    expert_bias_ = params->Add(std::move(bias));
    step_load_.assign(c.n_experts, 0.0);
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
  const double output_std = c.init_std / std::sqrt(2.0 * c.n_layers);
  experts_ = std::make_unique<GroupedSwiGluExperts>(
      params, groups.tensor_parallel(), prefixes, aoe ? "w_up" : "w_g", c.d_model,
      scorer_->gate_input_width(), c.ExpertWidth(), c.init_std, output_std, shardings);
  if (c.SharedWidth() > 0) {
    // One SwiGLU of width S·d_shared is the S shared experts side by side; replicated over dp
    // and split over tp exactly like the dense FFN.
    shared_ = std::make_unique<GroupedSwiGluExperts>(
        params, groups.tensor_parallel(), std::vector<std::string>{prefix + ".shared"}, "w_g",
        c.d_model, c.d_model, c.SharedWidth(), c.init_std, output_std,
        std::vector<Sharding>{Sharding::Replicated()});
  }
  dispatcher_ = parallel::MakeExpertDispatcher(groups.expert_parallel(),
                                               groups.Host(parallel::GroupKind::kExpertParallel),
                                               c.n_experts, c.d_model, scorer_->gate_cache_width());
  AOETRON_CHECK_EQ(dispatcher_->first_local_expert(), shard->first);
}

void RoutedFeedForward::Forward(const Tensor& x, Tensor& y, ActivationArena& arena) {
  const int64_t tokens = x.dim(0);
  x_ = x;
  // 1. score
  logits_ = scorer_->Forward(x, arena);
  const Tensor s = ScoreFunction(logits_, arena);
  // 2. select
  Select(s, arena);
  // 3. weigh (q over all n is needed anyway for the aux loss and Ent_conf)
  Weigh(s, arena);
  // 4. balance (global over the data-parallel group; also the capacity's keep limits)
  double z_sum = 0.0;
  if (z_coeff_ > 0) {
    lse_ = arena.Allocate({tokens}, logits_.dtype());
    z_sum = ops::RowLogSumExp(logits_, lse_);
  }
  ComputeBalanceStatistics(z_sum);
  // 5.–6. dispatch: layout, permute, all-to-all, regroup by local expert
  const Tensor gate_cache = scorer_->SelectedGateCache(top_index_, arena);  // [N, K·r] by slot
  batch_ = dispatcher_->Dispatch(x, top_index_, gate_cache, keep_limit_, arena);
  // 7. experts
  experts_->Forward(batch_.x, batch_.gate, batch_.offsets, batch_.out, arena);
  // 8. combine: outputs back to this rank, weighted sum in token order
  dispatcher_->Combine(gate_weights_, y, arena);
  stats_.dispatch = dispatcher_->stats();
  // 9. shared experts
  if (shared_ != nullptr) {
    Tensor shared_out = arena.Allocate(y.shape(), y.dtype());
    shared_->Forward(x, x, {0, tokens}, shared_out, arena);
    ops::AddInto(shared_out, y);
  }
}

Tensor RoutedFeedForward::ScoreFunction(const Tensor& logits, ActivationArena& arena) {
  if (!sigmoid_scores_) return logits;
  affinity_ = arena.Allocate(logits.shape(), logits.dtype());
  ops::Sigmoid(logits, affinity_);
  return affinity_;
}

std::vector<double> RoutedFeedForward::ExpertBias() const {
  if (expert_bias_ < 0) return {};
  const Tensor host = CopyToDevice((*params_)[expert_bias_].master, Device::Cpu());
  std::vector<double> bias(n_experts_);
  DispatchFloat(host.dtype(), [&]<typename T>() {
    for (int64_t i = 0; i < n_experts_; ++i) bias[i] = static_cast<double>(host.data<T>()[i]);
  });
  return bias;
}

void RoutedFeedForward::Select(const Tensor& s, ActivationArena& arena) {
  // Scores, probabilities and gate weights are in the scores' dtype (f32 beside bf16).
  const int64_t tokens = s.dim(0);
  top_values_ = arena.Allocate({tokens, top_k_}, s.dtype());
  top_index_ = arena.Allocate({tokens, top_k_}, DType::kI32);
  if (expert_bias_ < 0) {
    ops::TopK(s, top_k_, top_values_, top_index_);
    return;
  }
  // The bias moves the selection only: the gate weights see the unbiased s.
  Tensor biased = arena.Allocate(s.shape(), s.dtype());
  ops::Copy(s, biased);
  ops::AddRowVector(ExpertBias(), biased);
  ops::TopK(biased, top_k_, top_values_, top_index_);
  ops::TakeAlongRows(s, top_index_, top_values_);
}

void RoutedFeedForward::Weigh(const Tensor& s, ActivationArena& arena) {
  const int64_t tokens = s.dim(0);
  probs_all_ = arena.Allocate({tokens, n_experts_}, s.dtype());
  gate_weights_ = arena.Allocate({tokens, top_k_}, s.dtype());
  if (sigmoid_scores_) {
    ops::RowNormalize(s, probs_all_);               // q = s / Σ_n s
    ops::RowNormalize(top_values_, gate_weights_);  // w = v / Σ_K v
    return;
  }
  ops::RowSoftmaxForward(s, probs_all_);
  if (gate_over_all_experts_) {
    ops::TakeAlongRows(probs_all_, top_index_, gate_weights_);  // w = q[I]
  } else {
    ops::RowSoftmaxForward(top_values_, gate_weights_);
  }
}

// Global over the data-parallel group (every rank's micro-batch together, T_g tokens):
//   f_i = count_i / T_g (Σ f = K),  P_i = (1/T_g) Σ_t q_ti  with q = softmax over all n scores.
// One f64 all-reduce carries [counts | Σ_t q_t | tokens | Σ_t H(q_t) | Σ_t lse_t²]
// (ops::RoutingStatistics and the z-loss's sum, on the host: 2n + 3 numbers); with a capacity
// factor, an all-gather of the counts gives each rank the pairs of earlier ranks (KeepLimits).
void RoutedFeedForward::ComputeBalanceStatistics(double z_sum) {
  const int64_t n = n_experts_;
  std::vector<double> sums = ops::RoutingStatistics(top_index_, probs_all_);
  sums.push_back(z_sum);  // [2n + 2]: Σ_t lse_t² of the z-loss
  const double* count_sum = sums.data();
  const double* prob_sum = sums.data() + n;
  std::vector<int64_t> local_counts(n);
  for (int64_t i = 0; i < n; ++i) local_counts[i] = static_cast<int64_t>(count_sum[i]);
  if (data_parallel_->size() > 1) {
    data_parallel_->AllReduce(Tensor::Wrap(sums.data(), {2 * n + 3}, DType::kF64),
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
  stats_.z_loss = z_coeff_ * sums[2 * n + 2] / global_tokens;

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
  // 9'. shared experts
  if (shared_ != nullptr) shared_->Backward(dy, dx, dx, arena);
  // 8'. combine: dY per pair back to the experts' ranks, and dL/dw
  Tensor d_gate_weights = arena.Allocate({tokens, top_k_}, gate_weights_.dtype());
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
  // 4'.–1'. the scores' gradient, then the scorer's
  Tensor dlogits = ScoreGradient(d_gate_weights, loss_scale, arena);
  if (expert_bias_ >= 0) {
    for (int64_t i = 0; i < n_experts_; ++i) step_load_[i] += stats_.tokens_per_expert[i];
  }
  scorer_->Backward(dlogits, d_gate_cache, dx, arena);
}

// Stages 3'–1' on the host-side scalars of stage 4. topK is piecewise constant: the gradient
// reaches s through the selected gate weights (v = s[I]) and through q (all experts).
Tensor RoutedFeedForward::ScoreGradient(const Tensor& d_gate_weights, double loss_scale,
                                        ActivationArena& arena) {
  const int64_t tokens = x_.dim(0);
  const DType score_dtype = probs_all_.dtype();
  auto zeros = [&](int64_t columns) {
    Tensor t = arena.Allocate({tokens, columns}, score_dtype);
    ops::Fill(t, 0.0);
    return t;
  };
  Tensor dlogits = zeros(n_experts_);
  Tensor ds = sigmoid_scores_ ? zeros(n_experts_) : dlogits;  // s = l unless sigmoid
  Tensor dprobs_all = zeros(n_experts_);
  if (gate_over_all_experts_) {
    ops::TopKBackward(d_gate_weights, top_index_, dprobs_all);  // w = q[I]: scatter-add
  } else {
    Tensor d_top_values = zeros(top_k_);
    if (sigmoid_scores_) {
      ops::RowNormalizeBackward(d_gate_weights, gate_weights_, top_values_, d_top_values);
    } else {
      ops::RowSoftmaxBackward(d_gate_weights, gate_weights_, d_top_values);
    }
    ops::TopKBackward(d_top_values, top_index_, ds);  // 2'. select: v = s[I]
  }
  // Why the extra factor dp for the aux loss and the z-loss: the trainer gives each of the dp
  // ranks loss_scale = 1/(micro-batches · dp) and SUMS the gradients over dp, which turns the
  // per-rank mean CE into the global mean. L_aux and L_z are not per-rank means: each is one loss
  // of the global micro-batch, the same on every rank, and each token's scores live on exactly
  // one rank. Summed over dp, Σ_r (loss_scale·dp)·∂L/∂l_{t∈r} = (1/micro-batches)·∂L/∂l for every
  // token — what one process running the global micro-batch computes. (dp = 1: no change.)
  const double shared_loss_scale = loss_scale * data_parallel_->size();
  if (aux_coeff_ > 0) {
    // ∂(α·n·Σ f_i P_i)/∂q_ti = α·n·f_i / T_g for every token t of the global micro-batch
    // (f is a constant).
    std::vector<double> dq_row(n_experts_);
    for (int64_t i = 0; i < n_experts_; ++i) {
      dq_row[i] = shared_loss_scale * aux_coeff_ * n_experts_ * load_fraction_[i] / global_tokens_;
    }
    ops::AddRowVector(dq_row, dprobs_all);
  }
  if (gate_over_all_experts_ || aux_coeff_ > 0) {
    if (sigmoid_scores_) {
      ops::RowNormalizeBackward(dprobs_all, probs_all_, affinity_, ds);  // q = s / Σ_n s
    } else {
      ops::RowSoftmaxBackward(dprobs_all, probs_all_, ds);  // q = softmax(l)
    }
  }
  if (sigmoid_scores_) ops::SigmoidBackward(ds, affinity_, dlogits);  // s = σ(l)
  if (z_coeff_ > 0) {
    // ∂(coeff · Σ_t lse_t² / T_g)/∂l_ti = coeff/T_g · 2·lse_t · softmax(l_t)_i
    ops::LogSumExpSquareBackward(logits_, lse_, shared_loss_scale * z_coeff_ / global_tokens_,
                                 dlogits);
  }
  return dlogits;
}

void RoutedFeedForward::UpdateExpertBias() {
  if (expert_bias_ < 0) return;
  double mean_load = 0.0;
  for (const double load : step_load_) mean_load += load;
  mean_load /= static_cast<double>(n_experts_);
  std::vector<double> bias = ExpertBias();
  for (int64_t i = 0; i < n_experts_; ++i) {
    const double gap = mean_load - step_load_[i];
    bias[i] += bias_rate_ * static_cast<double>((gap > 0) - (gap < 0));
  }
  std::fill(step_load_.begin(), step_load_.end(), 0.0);
  // Rounded once to the masters' dtype (f32), written to the masters (and their compute copy).
  Parameter& p = (*params_)[expert_bias_];
  Tensor host = Tensor::Empty({n_experts_}, p.master.dtype());
  DispatchFloat(host.dtype(), [&]<typename T>() {
    for (int64_t i = 0; i < n_experts_; ++i) host.data<T>()[i] = static_cast<T>(bias[i]);
  });
  CopyAcrossDevices(host, p.master);
  if (params_->has_compute_copy()) ops::Convert(p.master, p.value);
}

}  // namespace aoetron
