#include "launcher/trainer.h"

#include <omp.h>

#include <chrono>
#include <cmath>

#include "absl/strings/str_format.h"
#include "core/optim/grad_clip.h"
#include "launcher/config_conversion.h"
#include "launcher/config_validation.h"
#include "launcher/metrics_logger.h"
#include "models/flop_count.h"

namespace aoetron {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

Trainer::Trainer(const config::TrainConfig& config, TrainerIo io) : config_(config), io_(io) {}

Trainer::~Trainer() = default;

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const config::TrainConfig& config,
                                                         TrainerIo io) {
  if (absl::Status valid = ValidateTrainConfig(config, /*world_size=*/1); !valid.ok()) {
    return valid;
  }
  if (config.parallel().threads() > 0) {
    omp_set_num_threads(static_cast<int>(config.parallel().threads()));
  }
  std::unique_ptr<Trainer> trainer(new Trainer(config, io));
  absl::StatusOr<BatchSources> data = OpenBatchSources(config);
  if (!data.ok()) return data.status();
  trainer->data_ = *std::move(data);

  const ModelConfig model_config = ModelConfigFromConfig(config);
  trainer->model_ = std::make_unique<GptModel>(model_config);
  trainer->model_->parameters().Initialize(config.train().seed());
  trainer->optimizer_ = std::make_unique<AdamWOptimizer>(&trainer->model_->parameters(),
                                                         AdamWHyperParamsFromConfig(config));
  trainer->schedule_ = LrScheduleFromConfig(config);
  for (Parameter& p : trainer->model_->parameters().all()) trainer->grads_.push_back(p.grad);

  const int64_t batch = config.train().micro_batch_size(), seq = config.model().seq_len();
  trainer->tokens_ = Tensor::Empty({batch, seq}, DType::kI32);
  trainer->targets_ = Tensor::Empty({batch, seq}, DType::kI32);
  trainer->tokens_per_step_ = batch * seq * config.train().grad_accum_steps();
  trainer->flops_per_step_ = TrainingFlopsPerStep(model_config, trainer->tokens_per_step_);
  return trainer;
}

absl::StatusOr<StepResult> Trainer::RunStep(int64_t step) {
  const auto start = std::chrono::steady_clock::now();
  const int64_t accum = config_.train().grad_accum_steps();
  StepResult result;
  std::vector<std::vector<ExpertLoadStats>> layer_stats;
  model_->parameters().ZeroGrads();
  for (int64_t m = 0; m < accum; ++m) {
    data_.train->FillBatch(step * accum + m, tokens_, targets_);
    StepOutputs out =
        model_->ForwardBackward(tokens_, targets_, static_cast<float>(1.0 / accum), arena_);
    if (!std::isfinite(out.loss) || !std::isfinite(out.aux_loss)) {
      return absl::InternalError(absl::StrFormat(
          "step %d: the loss is not finite (loss %g, aux_loss %g, micro-batch %d of %d); "
          "stopping (too large an optimizer.lr or model.init_std is the usual cause)",
          step + 1, out.loss, out.aux_loss, m + 1, accum));
    }
    result.loss += out.loss / static_cast<double>(accum);
    result.aux_loss += out.aux_loss / static_cast<double>(accum);
    if (!out.layer_stats.empty()) layer_stats.push_back(std::move(out.layer_stats));
  }
  result.grad_norm = std::sqrt(GlobalSumSquares(grads_));
  if (!std::isfinite(result.grad_norm)) {
    return absl::InternalError(absl::StrFormat(
        "step %d: the gradient norm is not finite (%g, loss %g); stopping before the optimizer "
        "step (too large an optimizer.lr or model.init_std is the usual cause)",
        step + 1, result.grad_norm, result.loss));
  }
  ClipByGlobalNorm(grads_, result.grad_norm, config_.optimizer().grad_clip());
  result.lr = schedule_.At(step);
  optimizer_->Step(result.lr);
  result.layers = SummariseExpertLoad(layer_stats);
  result.seconds = SecondsSince(start);
  return result;
}

double Trainer::Evaluate() {
  AOETRON_CHECK(data_.eval != nullptr) << "Evaluate: train.eval_interval is 0, no held-out data";
  const int64_t batches = config_.train().eval_steps();
  double sum = 0.0;
  for (int64_t i = 0; i < batches; ++i) {
    data_.eval->FillBatch(i, tokens_, targets_);
    sum += model_->Forward(tokens_, targets_, arena_).loss;
  }
  return sum / static_cast<double>(batches);
}

absl::StatusOr<TrainSummary> Trainer::Train() {
  const config::TrainSection& train = config_.train();
  const std::string metrics_path = ResolveMetricsFilePath(config_);
  absl::StatusOr<std::unique_ptr<MetricsLogger>> logger = MetricsLogger::Open(
      metrics_path, io_.out, WantsHumanProgress(config_.logging().progress(), io_.out_is_terminal));
  if (!logger.ok()) return logger.status();
  if (config_.checkpoint().interval() > 0 || !config_.checkpoint().dir().empty()) {
    *io_.err << "note: checkpointing is not implemented in this build; checkpoint.dir and "
                "checkpoint.interval are accepted but no checkpoint will be written\n";
  }
  const ParameterSet& params = model_->parameters();
  *io_.err << absl::StrFormat(
      "aoetron-train: %s model, %d parameters (%d active matmul), %.3g GFLOP per step of %d "
      "tokens, %d OpenMP threads; metrics to %s\n",
      FfnKindName(model_->config().ffn), params.num_elements(),
      ActiveMatmulParameters(model_->config()), flops_per_step_ / 1e9, tokens_per_step_,
      omp_get_max_threads(), metrics_path);

  TrainSummary summary;
  summary.metrics_path = metrics_path;
  double window_seconds = 0.0;
  int64_t window_steps = 0;
  for (int64_t s = 0; s < train.steps(); ++s) {
    absl::StatusOr<StepResult> result = RunStep(s);
    if (!result.ok()) return result.status();
    const int64_t step = s + 1;
    summary.steps = step;
    summary.losses.push_back(result->loss);
    window_seconds += result->seconds;
    ++window_steps;

    const bool last = step == train.steps();
    std::optional<double> val_loss;
    if (train.eval_interval() > 0 && (step % train.eval_interval() == 0 || last)) {
      val_loss = Evaluate();
      summary.final_val_loss = val_loss;
    }
    const bool logged =
        step == 1 || step % config_.logging().interval() == 0 || last || val_loss.has_value();
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
    metrics.tokens_per_s = static_cast<double>(tokens_per_step_) / metrics.step_seconds;
    metrics.model_flops_per_s = flops_per_step_ / metrics.step_seconds;
    metrics.val_loss = val_loss;
    metrics.layers = std::move(result->layers);
    if (absl::Status logged_ok = (*logger)->Log(metrics); !logged_ok.ok()) return logged_ok;
    window_seconds = 0.0;
    window_steps = 0;
  }
  *io_.err << absl::StrFormat("aoetron-train: done, %d steps, final loss %.4f%s\n", summary.steps,
                              summary.losses.back(),
                              summary.final_val_loss.has_value()
                                  ? absl::StrFormat(", val_loss %.4f", *summary.final_val_loss)
                                  : std::string());
  return summary;
}

}  // namespace aoetron
