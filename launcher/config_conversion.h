// From the config schema to the plain structs of models/ and core/optim, which know nothing of
// protobuf. Field for field; no checks here (ValidateTrainConfig does those first).
#pragma once

#include "core/optim/adamw.h"
#include "core/optim/lr_schedule.h"
#include "launcher/config.pb.h"
#include "models/model_config.h"

namespace aoetron {

ModelConfig ModelConfigFromConfig(const config::TrainConfig& config);
AdamWHyperParams AdamWHyperParamsFromConfig(const config::TrainConfig& config);
// total_steps is train.steps.
LrSchedule LrScheduleFromConfig(const config::TrainConfig& config);

}  // namespace aoetron
