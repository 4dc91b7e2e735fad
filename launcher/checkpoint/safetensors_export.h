// Export of a checkpoint's model weights as safetensors files, for PyTorch / Hugging Face users.
//
// Output directory:
//   model-00001-of-0000K.safetensors ...   full (unsharded) tensors, assembled from the saved
//                                          boxes whatever layout saved them
//   model.safetensors.index.json           {"metadata": {"total_size": <bytes>},
//                                           "weight_map": {"<tensor>": "<file>", ...}}
//   config.json                            ExportOptions::config_json when given: the model's
//                                          configuration and conventions (launcher/
//                                          export_config.h builds it from the run's config)
// A safetensors file is: u64 little-endian N, N bytes of JSON header (padded with spaces to a
// multiple of 8), then the data. The header maps each tensor name to {"dtype": "F32", "shape":
// [...], "data_offsets": [begin, end]} (offsets relative to the data), plus "__metadata__"
// (string values: format "pt", the step, the weight convention).
//
// Tensor names are aoetron's parameter names (models/gpt_model.h), e.g. "embedding.weight",
// "layers.0.attn.w_qkv", "layers.0.ffn.experts.3.w_up"; every expert is its own tensor. Weights
// are stored [in, out] (y = x @ W), the transpose of torch.nn.Linear.weight. Tensors are written
// in natural name order ("layers.2" before "layers.10"), so an export does not depend on the
// layout that saved the checkpoint: the same model gives byte-identical files.
// Only KIND_PARAMETER tensors are exported unless include_all_kinds. Floating-point tensors are
// written as saved (f32), or rounded to bf16 with ExportOptions::float_dtype.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "launcher/checkpoint/checkpoint_reader.h"

namespace aoetron::checkpoint {

struct ExportOptions {
  // A file holds tensors up to this many data bytes; a larger tensor gets a file of its own.
  uint64_t max_shard_bytes = uint64_t{5} << 30;
  bool include_all_kinds = false;  // also optimizer state and other tensors
  // The dtype floating-point tensors are written in: f32 (as saved: checkpoints hold f32 masters)
  // or bf16 (rounded to nearest even, half the bytes: what bf16 inference loads).
  DType float_dtype = DType::kF32;
  // Written as config.json (after the weights and the index) when not empty. This library does
  // not know the config schema, so the caller builds it.
  std::string config_json;
};

struct ExportSummary {
  std::vector<std::string> files;  // written, in order (the index, then config.json, last)
  int64_t tensors = 0;
  uint64_t total_bytes = 0;  // data bytes
};

// Writes the export into `out_directory` (created if missing; existing files of the same names
// are replaced). Each tensor is read with CheckpointReader::Read (CRC-checked, coverage-checked)
// one at a time, so memory stays at one tensor. Errors name the file and tensor.
absl::StatusOr<ExportSummary> ExportSafetensors(const CheckpointReader& reader,
                                                const std::string& out_directory,
                                                const ExportOptions& options = {});

// "layers.2.x" < "layers.10.x": digit runs compare as numbers.
bool NaturalLess(const std::string& a, const std::string& b);

}  // namespace aoetron::checkpoint
