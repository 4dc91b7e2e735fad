// Trainer: one optimizer step (RunStep, its numbered stages) and the held-out evaluation.
#include <omp.h>

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
#include "launcher/text_generation.h"
#include "launcher/trainer.h"

namespace aoetron {

absl::StatusOr<StepResult> Trainer::RunStep(int64_t step, bool summarise_experts) {
  std::optional<parallel::ScopedDeadline> deadline;
  if (watchdog_ != nullptr && config_.parallel().step_timeout_s() > 0) {
    deadline.emplace(watchdog_, absl::StrCat("training step ", step + 1),
                     absl::Seconds(config_.parallel().step_timeout_s()));
  }
  const auto start = SteadyClock::now();
  const CommSeconds comm_at_start = CollectiveSeconds();
  const int64_t micro_batches = batch_.micro_batches_per_rank;
  // Each micro-batch's mean loss counts 1/(M·dp) of the global batch's mean.
  const double loss_scale = 1.0 / static_cast<double>(batch_.micro_batches_per_step());
  StepResult result;
  std::vector<std::vector<ExpertLoadStats>> layer_stats;

  // 1.–2. Forward and backward over this rank's micro-batches. The last micro-batch's backward
  // may start the gradient reduction of each bucket as soon as its layers are done
  // (DataParallelOptimizer::LastMicroBatchHook: the replicated optimizer's overlap).
  model_->parameters().ZeroGrads();
  optimizer_->BeginStep(/*check_finite=*/world_->size() > 1);
  double loss_sum = 0.0, aux_sum = 0.0;
  bool finite = true;
  for (int64_t m = 0; m < micro_batches; ++m) {
    if (absl::Status next = data_.train->Next(tokens_, targets_); !next.ok()) {
      return absl::Status(next.code(), absl::StrFormat("step %d: reading the training data: %s",
                                                       step + 1, next.message()));
    }
    GradientsReadyHook gradients_ready;
    if (m + 1 == micro_batches) gradients_ready = optimizer_->LastMicroBatchHook();
    StepOutputs out =
        model_->ForwardBackward(tokens_, targets_, loss_scale, *arena_, gradients_ready);
    finite = finite && std::isfinite(out.loss) && std::isfinite(out.aux_loss);
    loss_sum += out.loss;
    aux_sum += out.aux_loss;
    if (!out.layer_stats.empty()) layer_stats.push_back(std::move(out.layer_stats));
  }
  optimizer_->FinishBackward();
  // 3. The loss of the global batch, and a stop on every rank if any saw a non-finite one.
  if (absl::Status agreed = AgreeOnLoss(step, loss_sum, aux_sum, finite, result); !agreed.ok()) {
    return agreed;
  }

  // 4.–5. Sum the gradients over the replicas; the global norm counts each element once.
  optimizer_->ReduceGradients();
  Tensor squares = Tensor::Zeros({1}, DType::kF64);
  squares.data<double>()[0] = optimizer_->LocalSquaredNorm();
  if (world_->size() > 1) world_->AllReduce(squares, parallel::ReduceOp::kSum);
  result.grad_norm = std::sqrt(squares.data<double>()[0]);
  if (!std::isfinite(result.grad_norm)) {
    return absl::InternalError(absl::StrFormat(
        "step %d: the gradient norm is not finite (%g, loss %g); stopping before the optimizer "
        "step (too large an optimizer.lr or model.init_std is the usual cause)",
        step + 1, result.grad_norm, result.loss));
  }

  // 6. Clip.
  const double clip = ClipFactor(result.grad_norm, config_.optimizer().grad_clip());
  if (clip != 1.0) optimizer_->ScaleGradients(clip);

  // 7. AdamW on the masters (and the bf16 compute copy refreshed).
  result.lr = schedule_.At(step);
  optimizer_->Step(result.lr);
  model_->UpdateExpertBiases();  // aux-loss-free balancing, after the weights' update
  if (summarise_experts) {
    result.layers = SummariseAcrossRanks(layer_stats);
    if (groups_->grid().ep_size() > 1) result.dispatch = SummariseDispatch(layer_stats);
  }
  result.comm = CollectiveSeconds() - comm_at_start;
  result.seconds = SecondsSince(start);
  return result;
}

absl::StatusOr<double> Trainer::Evaluate(std::vector<int64_t>* target_counts) {
  AOETRON_CHECK(data_.eval != nullptr) << "Evaluate: train.eval_interval is 0, no held-out data";
  const int64_t batches = config_.train().eval_steps();
  const int64_t dp = batch_.dp, dp_rank = groups_->grid().dp_rank();
  // Every rank runs the same number of forwards (the model may communicate inside them); a
  // rank past the last held-out micro-batch repeats one and does not count it.
  const int64_t rounds = (batches + dp - 1) / dp;
  double sum = 0.0;
  const int64_t vocab = config_.model().vocab_size();
  // Counted on tp rank 0 only (every tp rank reads the same micro-batch), as f64 for the
  // all-reduce (exact: counts stay far below 2^53).
  Tensor counts;
  if (target_counts != nullptr) counts = Tensor::Zeros({vocab}, DType::kF64);
  const bool counts_here = groups_->grid().tp_rank() == 0;
  for (int64_t k = 0; k < rounds; ++k) {
    const int64_t index = k * dp + dp_rank;
    const bool counted = index < batches;
    if (absl::Status fill = data_.eval->Fill(counted ? index : index % batches, tokens_, targets_);
        !fill.ok()) {
      return absl::Status(fill.code(),
                          absl::StrCat("reading the evaluation data: ", fill.message()));
    }
    const double loss = model_->Forward(tokens_, targets_, *arena_).loss;
    if (counted) sum += loss;
    if (counted && counts.defined() && counts_here) {
      const Tensor host = CopyToDevice(targets_, Device::Cpu());
      for (int64_t i = 0; i < host.numel(); ++i) {
        const int32_t id = host.data<int32_t>()[i];
        if (id >= 0 && id < vocab) counts.data<double>()[id] += 1.0;
      }
    }
  }
  if (counts.defined()) {
    if (world_->size() > 1) world_->AllReduce(counts, parallel::ReduceOp::kSum);
    target_counts->assign(vocab, 0);
    for (int64_t id = 0; id < vocab; ++id) {
      (*target_counts)[id] = static_cast<int64_t>(counts.data<double>()[id]);
    }
  }
  Tensor reduced = Tensor::Zeros({1}, DType::kF64);
  reduced.data<double>()[0] = groups_->grid().tp_rank() == 0 ? sum : 0.0;
  if (world_->size() > 1) world_->AllReduce(reduced, parallel::ReduceOp::kSum);
  return reduced.data<double>()[0] / static_cast<double>(batches);
}

std::string Trainer::SampleText() {
  if (sample_tokenizer_ == nullptr) return "";
  SamplingOptions sampling;
  sampling.seed = config_.train().seed();
  const std::vector<int32_t> ids =
      GenerateTokens(*model_, sample_prompt_, config_.logging().sample_tokens(), sampling,
                     sample_tokenizer_->end_of_text_id(), *arena_);
  std::vector<int32_t> shown = ids;  // the prompt too, unless it is the end-of-text token
  if (!config_.logging().sample_prompt().empty()) {
    shown.insert(shown.begin(), sample_prompt_.begin(), sample_prompt_.end());
  }
  absl::StatusOr<std::string> text = sample_tokenizer_->Decode(shown);
  return text.ok() ? *text : absl::StrCat("(", text.status().message(), ")");
}

}  // namespace aoetron
