// Trainer: the training loop (Train): steps, logging, evaluation, checkpoints and stops.
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
#include "launcher/trainer.h"
#include "models/flop_count.h"

namespace aoetron {

absl::StatusOr<TrainSummary> Trainer::Train() {
  const config::TrainSection& train = config_.train();
  const std::string metrics_path = ResolveMetricsFilePath(config_);
  std::unique_ptr<MetricsLogger> logger;
  if (is_logging_rank()) {
    absl::StatusOr<std::unique_ptr<MetricsLogger>> opened =
        MetricsLogger::Open(metrics_path, io_.out,
                            WantsHumanProgress(config_.logging().progress(), io_.out_is_terminal));
    if (!opened.ok()) return opened.status();
    logger = *std::move(opened);
  }
  const ParameterSet& params = model_->parameters();
  const parallel::ProcessGrid& grid = groups_->grid();
  *io_.err << absl::StrFormat(
      "aoetron-train: %s model, %d parameters per rank (%d active matmul), %.3g GFLOP per step "
      "of %d tokens (global batch %d = micro-batch %d × %d per rank × dp %d), %d ranks (tp %d, "
      "ep %d, dp %d%s), %d OpenMP threads per rank; metrics to %s\n",
      FfnKindName(model_->config().ffn), params.num_elements(),
      ActiveMatmulParameters(model_->config()), flops_per_step_ / 1e9, tokens_per_step_,
      batch_.global_batch_size, batch_.micro_batch_size, batch_.micro_batches_per_rank, batch_.dp,
      grid.world_size(), grid.tp_size(), grid.ep_size(), grid.dp_size(),
      config_.parallel().zero1() ? ", ZeRO-1" : "", omp_get_max_threads(), metrics_path);

  TrainSummary summary;
  summary.metrics_path = metrics_path;
  summary.first_step = start_step_ + 1;
  if (!resumed_from_.empty()) {
    *io_.err << absl::StrFormat(
        "aoetron-train: resumed from step %d (%s, %d samples consumed); continuing at step %d\n",
        start_step_, resumed_from_, consumed_samples(), start_step_ + 1);
  }
  if (start_step_ >= train.steps()) {
    *io_.err << absl::StrFormat(
        "aoetron-train: the checkpoint is at step %d and train.steps is %d: nothing to do\n",
        start_step_, train.steps());
    return summary;
  }
  double window_seconds = 0.0;
  CommSeconds window_comm;
  int64_t window_steps = 0;
  for (int64_t s = start_step_; s < train.steps(); ++s) {
    const int64_t step = s + 1;
    const bool last = step == train.steps();
    const bool evaluates = train.eval_interval() > 0 && (step % train.eval_interval() == 0 || last);
    const bool logged = step == 1 || step % config_.logging().interval() == 0 || last || evaluates;
    absl::StatusOr<StepResult> result = RunStep(s, /*summarise_experts=*/logged);
    if (!result.ok()) return result.status();
    summary.steps = step;
    summary.losses.push_back(result->loss);
    summary.grad_norms.push_back(result->grad_norm);
    window_seconds += result->seconds;
    window_comm += result->comm;
    ++window_steps;

    std::optional<double> val_loss;
    if (evaluates) {
      absl::StatusOr<double> evaluated = Evaluate();
      if (!evaluated.ok()) {
        return absl::Status(evaluated.status().code(),
                            absl::StrCat("step ", step, ": ", evaluated.status().message()));
      }
      val_loss = *evaluated;
      summary.final_val_loss = val_loss;
      if (const std::string sample = SampleText(); !sample.empty()) {
        *io_.err << "step " << step << " sample: " << sample << std::endl;
      }
    }
    // A stop request on any rank ends the run on every rank after this same step.
    const bool stop =
        ((stop_requested_ != nullptr && AgreeOnStop()) || step == stop_after_step_) && !last;
    const int64_t interval = config_.checkpoint().interval();
    if (checkpoints_ != nullptr && (last || stop || (interval > 0 && step % interval == 0))) {
      if (absl::Status saved = SaveCheckpoint(step); !saved.ok()) {
        return absl::Status(
            saved.code(), absl::StrCat("step ", step, ": saving a checkpoint: ", saved.message()));
      }
      summary.last_saved_step = step;
    }
    if (stop) {
      summary.stopped_on_request = true;
      if (!logged) break;
    }
    if (!logged) continue;
    StepMetrics metrics;
    metrics.step = step;
    metrics.total_steps = train.steps();
    metrics.loss = result->loss;
    metrics.aux_loss = result->aux_loss;
    metrics.grad_norm = result->grad_norm;
    metrics.lr = result->lr;
    metrics.tokens = step * tokens_per_step_;
    metrics.step_seconds = window_seconds / static_cast<double>(window_steps);
    metrics.comm = window_comm / static_cast<double>(window_steps);
    metrics.tokens_per_s = static_cast<double>(tokens_per_step_) / metrics.step_seconds;
    metrics.model_flops_per_s = flops_per_step_ / metrics.step_seconds;
    metrics.val_loss = val_loss;
    metrics.peak_rss_bytes = PeakResidentBytesOfAnyRank();
    metrics.layers = std::move(result->layers);
    metrics.dispatch = result->dispatch;
    if (logger != nullptr) {
      if (absl::Status logged_ok = logger->Log(metrics); !logged_ok.ok()) return logged_ok;
    }
    window_seconds = 0.0;
    window_comm = {};
    window_steps = 0;
    if (stop) break;
  }
  if (checkpoints_ != nullptr) {
    if (absl::Status waited = checkpoints_->Wait(); !waited.ok()) {
      return absl::Status(waited.code(),
                          absl::StrCat("saving the last checkpoint: ", waited.message()));
    }
  }
  if (summary.stopped_on_request) {
    *io_.err << absl::StrFormat(
        "aoetron-train: stopped on request after step %d%s\n", summary.steps,
        summary.last_saved_step == summary.steps
            ? absl::StrFormat("; checkpoint %s/step_%d saved (resume with --resume auto)",
                              config_.checkpoint().dir(), summary.steps)
            : std::string("; no checkpoint (checkpoint.dir is empty)"));
  }
  *io_.err << absl::StrFormat("aoetron-train: done, %d steps, final loss %.4f%s\n", summary.steps,
                              summary.losses.back(),
                              summary.final_val_loss.has_value()
                                  ? absl::StrFormat(", val_loss %.4f", *summary.final_val_loss)
                                  : std::string());
  return summary;
}

}  // namespace aoetron
