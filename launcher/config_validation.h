// Semantic checks of a TrainConfig: ranges and consistency between fields.
//
// Parsing (launcher/config_loader.h) guarantees that every field exists and has the right type;
// this decides whether the values make a run that can work. The first problem found is returned
// as absl::InvalidArgumentError whose message names every field involved as the config spells
// it and the values it saw: "model.top_k (9) must be ≤ model.n_experts (8)". The model's own
// checks (ValidateModelConfig) run as well, after ours.
//
// Thread safety: a pure function.
#pragma once

#include "absl/status/status.h"
#include "core/device.h"
#include "launcher/config.pb.h"

namespace aoetron {

// `world_size` is the number of processes the run has (1 for a plain `aoetron-train`): the
// parallel layout must fit it exactly.
absl::Status ValidateTrainConfig(const config::TrainConfig& config, int world_size = 1);

// parallel.device against what this process can use: cuda needs a build with the CUDA backend
// and at least `local_size` visible GPUs (rank with node-local rank r takes GPU r). The error
// names the field and says which of the two is missing.
absl::Status ValidateDevice(const config::TrainConfig& config, int local_size,
                            bool cuda_backend_built, int visible_gpus);

// The device parallel.device names for the process with node-local rank `local_rank`.
Device DeviceFromConfig(const config::TrainConfig& config, int local_rank);

}  // namespace aoetron
