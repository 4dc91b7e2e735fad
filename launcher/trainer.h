// Trainer: one training run of a GptModel on one process, from a validated TrainConfig.
//
// Each optimizer step (0-based s; logs and errors call it step s + 1):
//   1. zero the gradients;
//   2. for each of grad_accum_steps micro-batches m: fetch micro-batch s·A + m of the training
//      stream, ForwardBackward with loss_scale 1/A (so gradients are of the mean loss);
//   3. global gradient norm ‖g‖ = sqrt(Σ g²) over every parameter gradient;
//   4. clip to optimizer.grad_clip (ClipByGlobalNorm);
//   5. lr = schedule(s); AdamW step at lr.
// A non-finite loss or gradient norm stops the run before the optimizer touches the weights,
// with an error naming the step. Every train.eval_interval steps (and after the last) the model
// is evaluated on train.eval_steps held-out micro-batches (always the same ones, so val_loss is
// comparable across the run). docs/training.md describes logging.
//
// Deterministic given the config: data, initialisation and kernels do not depend on timing.
// Not thread-safe; kernels inside use the OpenMP threads set by Create.
#pragma once

#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/arena.h"
#include "core/optim/lr_schedule.h"
#include "launcher/adamw_optimizer.h"
#include "launcher/batch_source.h"
#include "launcher/config.pb.h"
#include "launcher/step_metrics.h"
#include "models/gpt_model.h"

namespace aoetron {

// Where the trainer writes. Streams must outlive the trainer.
struct TrainerIo {
  std::ostream* out = &std::cout;  // one line per logged step (human or JSON)
  std::ostream* err = &std::cerr;  // notes and the run summary
  bool out_is_terminal = false;    // decides logging.progress auto
};

struct StepResult {
  double loss = 0.0;       // mean over the micro-batches
  double aux_loss = 0.0;   // mean over the micro-batches
  double grad_norm = 0.0;  // before clipping
  double lr = 0.0;
  double seconds = 0.0;  // wall time of the whole step
  std::vector<LayerLoadSummary> layers;
};

struct TrainSummary {
  int64_t steps = 0;
  std::vector<double> losses;  // per step
  std::optional<double> final_val_loss;
  std::string metrics_path;
};

class Trainer {
 public:
  // Validates `config` (for one rank), sets the process's OpenMP thread count
  // (parallel.threads; 0 leaves OpenMP's default), builds and initialises the model
  // (train.seed), the optimizer and the data streams. Errors are the config's or the data's.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(const config::TrainConfig& config,
                                                         TrainerIo io = {});
  ~Trainer();

  // Runs train.steps optimizer steps with evaluation and logging (opens the metrics file).
  absl::StatusOr<TrainSummary> Train();

  // One optimizer step; `step` (0-based) selects the micro-batches and the learning rate.
  // Logs nothing. An error (non-finite loss or gradient norm) leaves the weights unchanged.
  absl::StatusOr<StepResult> RunStep(int64_t step);

  // Mean loss over the train.eval_steps held-out micro-batches; no gradients are touched.
  // Requires train.eval_interval > 0 (otherwise there is no held-out stream).
  double Evaluate();

  GptModel& model() { return *model_; }
  const config::TrainConfig& config() const { return config_; }
  int64_t tokens_per_step() const { return tokens_per_step_; }
  double flops_per_step() const { return flops_per_step_; }

 private:
  Trainer(const config::TrainConfig& config, TrainerIo io);

  config::TrainConfig config_;
  TrainerIo io_;
  std::unique_ptr<GptModel> model_;
  std::unique_ptr<AdamWOptimizer> optimizer_;
  LrSchedule schedule_;
  BatchSources data_;
  ActivationArena arena_;
  Tensor tokens_, targets_;  // i32 [micro_batch_size, seq_len], refilled per micro-batch
  std::vector<Tensor> grads_;
  int64_t tokens_per_step_ = 0;
  double flops_per_step_ = 0.0;
};

}  // namespace aoetron
