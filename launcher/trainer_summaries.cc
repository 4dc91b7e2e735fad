// Trainer: what the ranks agree on and summarise across the job each step (collective time,
// stop requests, the global loss and finite checks, expert load and all-to-all traffic).
#include <omp.h>
#include <sys/resource.h>

#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "core/device_transfer.h"
#include "core/ops/elementwise.h"
#include "core/optim/grad_clip.h"
#include "core/timing.h"
#include "google/protobuf/text_format.h"
#include "launcher/checkpoint/parameter_checkpoint.h"
#include "launcher/config_validation.h"
#include "launcher/metrics_logger.h"
#include "launcher/trainer.h"

namespace aoetron {

CommSeconds Trainer::CollectiveSeconds() {
  using parallel::GroupKind;
  // A group's device and host communicators are one on a CPU run; on a GPU run both count.
  auto seconds = [this](GroupKind kind) {
    parallel::Communicator& device = groups_->Get(kind);
    parallel::Communicator& host = groups_->Host(kind);
    return device.seconds_in_collectives() +
           (&host != &device ? host.seconds_in_collectives() : 0.0);
  };
  return {seconds(GroupKind::kTensorParallel), seconds(GroupKind::kExpertParallel),
          seconds(GroupKind::kDataParallel), seconds(GroupKind::kExpertDataParallel),
          world_->seconds_in_collectives()};
}

bool Trainer::AgreeOnStop() {
  Tensor flag = Tensor::Zeros({1}, DType::kF64);
  flag.data<double>()[0] = (stop_requested_ != nullptr && *stop_requested_ != 0) ? 1.0 : 0.0;
  if (world_->size() > 1) world_->AllReduce(flag, parallel::ReduceOp::kMax);
  return flag.data<double>()[0] != 0.0;
}

// Step 3 of the loop: every rank learns the global batch's loss and whether any rank saw a
// non-finite loss or gradient, in one world all-reduce of [Σ loss, Σ aux, flag of rank 0, ...,
// flag of rank W−1] (flag 1: loss not finite, 2: loss finite but gradient not finite). Only tp
// rank 0 adds its losses (a tp group computes the same loss on every member). Checking the
// gradient before the sync is what lets the message name the rank: after the sum every rank's
// gradient would be NaN.
absl::Status Trainer::AgreeOnLoss(int64_t step, double local_loss_sum, double local_aux_sum,
                                  bool local_finite, StepResult& result) {
  const int world = world_->size();
  const bool counts = groups_->grid().tp_rank() == 0;
  // Checked before the sum (DataParallelOptimizer::LocalGradientsFinite). Alone, the norm check
  // suffices.
  const bool grads_finite = !local_finite || world == 1 || optimizer_->LocalGradientsFinite();
  Tensor reduced = Tensor::Zeros({2 + world}, DType::kF64);
  double* v = reduced.data<double>();
  v[0] = counts ? local_loss_sum : 0.0;
  v[1] = counts ? local_aux_sum : 0.0;
  v[2 + world_->world_rank()] = !local_finite ? 1.0 : (grads_finite ? 0.0 : 2.0);
  if (world > 1) world_->AllReduce(reduced, parallel::ReduceOp::kSum);
  const double micro_batches = static_cast<double>(batch_.micro_batches_per_step());
  result.loss = v[0] / micro_batches;
  result.aux_loss = v[1] / micro_batches;
  std::vector<int> bad_loss, bad_grad;
  for (int r = 0; r < world; ++r) {
    if (v[2 + r] == 1.0) bad_loss.push_back(r);
    if (v[2 + r] == 2.0) bad_grad.push_back(r);
  }
  auto ranks = [](const std::vector<int>& list) {
    return absl::StrCat(list.size() > 1 ? "ranks " : "rank ", absl::StrJoin(list, ", "));
  };
  if (!bad_loss.empty()) {
    return absl::InternalError(absl::StrFormat(
        "step %d: the loss is not finite on %s (mean loss %g, aux_loss %g); stopping (too large "
        "an optimizer.lr or model.init_std is the usual cause)",
        step + 1, ranks(bad_loss), result.loss, result.aux_loss));
  }
  if (!bad_grad.empty()) {
    return absl::InternalError(absl::StrFormat(
        "step %d: the gradient is not finite on %s (its loss is finite; mean loss %g); stopping "
        "before the optimizer step (too large an optimizer.lr or model.init_std is the usual "
        "cause)",
        step + 1, ranks(bad_grad), result.loss));
  }
  return absl::OkStatus();
}

// The expert-load summary of the whole global batch: per layer, the token counts per expert
// and the sums of Ent_conf, aux loss and z-loss over micro-batches are summed over dp, then
// summarised as one micro-batch (SummariseExpertLoad).
std::vector<LayerLoadSummary> Trainer::SummariseAcrossRanks(
    const std::vector<std::vector<ExpertLoadStats>>& local) {
  if (local.empty()) return {};
  const size_t layers = local.front().size();
  if (layers == 0) return {};
  const size_t experts = local.front().front().tokens_per_expert.size();
  const size_t width = experts + 3;
  Tensor reduced = Tensor::Zeros({static_cast<int64_t>(layers * width)}, DType::kF64);
  double* v = reduced.data<double>();
  for (const std::vector<ExpertLoadStats>& micro_batch : local) {
    for (size_t l = 0; l < layers; ++l) {
      const ExpertLoadStats& stats = micro_batch[l];
      for (size_t e = 0; e < experts; ++e) {
        v[l * width + e] += static_cast<double>(stats.tokens_per_expert[e]);
      }
      v[l * width + experts] += stats.entropy_confidence;
      v[l * width + experts + 1] += stats.aux_loss;
      v[l * width + experts + 2] += stats.z_loss;
    }
  }
  if (groups_->grid().dp_size() > 1) {
    groups_->Host(parallel::GroupKind::kDataParallel).AllReduce(reduced, parallel::ReduceOp::kSum);
  }
  const double micro_batches = static_cast<double>(batch_.micro_batches_per_step());
  std::vector<ExpertLoadStats> merged(layers);
  for (size_t l = 0; l < layers; ++l) {
    merged[l].tokens_per_expert.resize(experts);
    for (size_t e = 0; e < experts; ++e) {
      merged[l].tokens_per_expert[e] = std::llround(v[l * width + e]);
    }
    merged[l].entropy_confidence = v[l * width + experts] / micro_batches;
    merged[l].aux_loss = v[l * width + experts + 1] / micro_batches;
    merged[l].z_loss = v[l * width + experts + 2] / micro_batches;
    // Used only when no counts are reported: the last micro-batch's own figures.
    merged[l].load_fraction_min = local.back()[l].load_fraction_min;
    merged[l].load_fraction_max = local.back()[l].load_fraction_max;
    merged[l].entropy_load = local.back()[l].entropy_load;
  }
  return SummariseExpertLoad({merged}, groups_->grid().ep_size());
}

DispatchSummary Trainer::SummariseDispatch(const std::vector<std::vector<ExpertLoadStats>>& local) {
  // [payload, minimum, exchange] summed over the world, then exchange's max.
  Tensor sums = Tensor::Zeros({3}, DType::kF64);
  double* v = sums.data<double>();
  for (const std::vector<ExpertLoadStats>& micro_batch : local) {
    for (const ExpertLoadStats& layer : micro_batch) {
      v[0] += static_cast<double>(layer.dispatch.forward_payload_bytes);
      v[1] += static_cast<double>(layer.dispatch.minimum_payload_bytes);
      v[2] += static_cast<double>(layer.dispatch.total_bytes());
    }
  }
  Tensor busiest = Tensor::Zeros({1}, DType::kF64);
  busiest.data<double>()[0] = v[2];
  world_->AllReduce(sums, parallel::ReduceOp::kSum);
  world_->AllReduce(busiest, parallel::ReduceOp::kMax);
  const double ranks = static_cast<double>(world_->size());
  DispatchSummary summary;
  summary.payload_bytes = v[0] / ranks;
  summary.minimum_payload_bytes = v[1] / ranks;
  summary.exchange_bytes = v[2] / ranks;
  summary.exchange_bytes_max = busiest.data<double>()[0];
  return summary;
}

int64_t Trainer::PeakResidentBytesOfAnyRank() {
  struct rusage usage = {};
  getrusage(RUSAGE_SELF, &usage);
  Tensor peak = Tensor::Zeros({1}, DType::kF64);
  peak.data<double>()[0] = static_cast<double>(usage.ru_maxrss) * 1024.0;  // Linux: KiB
  if (world_->size() > 1) world_->AllReduce(peak, parallel::ReduceOp::kMax);
  return static_cast<int64_t>(peak.data<double>()[0]);
}

}  // namespace aoetron
