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
#include "launcher/config.pb.h"

namespace aoetron {

// `world_size` is the number of processes the run has (1 for a plain `aoetron-train`): the
// parallel layout must fit it exactly.
absl::Status ValidateTrainConfig(const config::TrainConfig& config, int world_size = 1);

}  // namespace aoetron
