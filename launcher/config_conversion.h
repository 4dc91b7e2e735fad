// From the config schema to the plain structs of models/ and core/optim, which know nothing of
// protobuf. Field for field; no checks here (ValidateTrainConfig does those first).
#pragma once

#include "core/optim/adamw.h"
#include "core/optim/lr_schedule.h"
#include "launcher/config.pb.h"
#include "models/model_config.h"

namespace aoetron {

ModelConfig ModelConfigFromConfig(const config::TrainConfig& config);
// model.precision as the model's compute dtype: f32, or bf16 (mixed precision).
DType ComputeDTypeFromConfig(const config::TrainConfig& config);
AdamWHyperParams AdamWHyperParamsFromConfig(const config::TrainConfig& config);
// total_steps is train.steps.
LrSchedule LrScheduleFromConfig(const config::TrainConfig& config);

// How one optimizer step's global batch is cut (Megatron's semantics):
//   global_batch_size = micro_batch_size · micro_batches_per_rank · dp
// with global_batch_size from train.global_batch_size, or (0) micro_batch_size ·
// grad_accum_steps · dp. The loss of a step is the mean over the global batch, so each
// micro-batch's loss is scaled by 1 / (micro_batches_per_rank · dp).
struct BatchLayout {
  int64_t micro_batch_size = 0;        // sequences per forward/backward, per rank
  int64_t micro_batches_per_rank = 0;  // forward/backward passes per rank per step
  int64_t dp = 1;                      // data-parallel ranks
  int64_t global_batch_size = 0;       // sequences per optimizer step, all ranks
  // Micro-batches per step over all ranks: micro_batches_per_rank · dp.
  int64_t micro_batches_per_step() const { return micro_batches_per_rank * dp; }
};
// The config must have passed ValidateTrainConfig for a world with this dp.
BatchLayout ResolveBatchLayout(const config::TrainConfig& config, int64_t dp);

}  // namespace aoetron
