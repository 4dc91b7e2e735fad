// The config.json of an `aoetron-ckpt export`: what a program needs beside the safetensors
// weights to run the model on its own, without aoetron's code or its config schema
// (docs/checkpoint.md, "config.json", lists every key).
//
// One JSON object, Hugging Face style, that `json.load` reads:
//   identity     "architectures", "model_type", "aoetron_export_version", "step", "torch_dtype"
//   model        every field of the EFFECTIVE model section (the run's values, defaults filled
//                in), and what the layers resolve them to: n_routed_experts = n_experts ·
//                granularity, routed_top_k = top_k · granularity, d_expert_resolved,
//                d_wide_resolved, d_shared_resolved, shared_width, expert_width, head_dim
//   conventions  strings that state the math the weights assume (rotary pairing, RMSNorm, SwiGLU,
//                AoE, selection and its tie rule, gate weights of the variant in use, aux and
//                z-loss with Σ f = K, the expert bias being selection-only)
//   tensor_layout  {pattern: {"shape": [...], "axes": [...]}} for every parameter name pattern
//   train_config the whole effective TrainConfig (launcher/config_json.h), for the record
// Keys are stable: a change of meaning bumps kExportConfigVersion. Values that do not apply to
// the model's ffn kind are written anyway (as the config holds them) and documented as ignored.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/tensor.h"
#include "launcher/config.pb.h"
#include "models/model_config.h"

namespace aoetron {

inline constexpr int kExportConfigVersion = 1;

// One parameter name pattern of the model ("layers.{l}.ffn.experts.{e}.w_up"; {l} ranges over
// [0, n_layers), {e} over [0, n_routed_experts)), its global shape and what each axis means.
struct ExportedTensorPattern {
  std::string pattern;
  Shape shape;
  std::vector<std::string> axes;  // one per dimension of `shape`
};

// Every parameter tensor of a model built from `model` (models/gpt_model.h), in the order the
// model registers them.
std::vector<ExportedTensorPattern> ExportedTensorLayout(const ModelConfig& model);

// The patterns expanded: every parameter name with its global shape.
std::map<std::string, Shape> ExpectedParameterShapes(const ModelConfig& model);

// OK when `saved` (name → global shape of the checkpoint's parameters) holds exactly the
// tensors of ExpectedParameterShapes(model). Otherwise FailedPrecondition naming the first
// missing, unexpected or misshapen tensor: a config.json that disagrees with the weights would
// describe another model.
absl::Status CheckParametersMatchConfig(const ModelConfig& model,
                                        const std::map<std::string, Shape>& saved);

// config.json for the checkpoint of `step` whose effective config is `config`, with weights
// written in `weights_dtype` (kF32 or kBF16). One key per line; ends with a newline.
std::string ExportConfigJson(const config::TrainConfig& config, int64_t step, DType weights_dtype);

}  // namespace aoetron
