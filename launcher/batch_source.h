// TokenBatchSource: a deterministic, random-access stream of training micro-batches.
//
// Micro-batch `index` is a pure function of the source's settings (seed, file) and `index`:
// asking twice gives the same tokens, whatever was asked in between. That makes runs
// reproducible and resuming trivial (the trainer derives the index from the step).
// OpenBatchSources builds the training and the held-out evaluation streams from the config.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "launcher/config.pb.h"

namespace aoetron {

class TokenBatchSource {
 public:
  virtual ~TokenBatchSource() = default;

  // Fills `tokens` and `targets`, both i32 [B, T] on the CPU, with micro-batch `index` (≥ 0).
  // Row b is sample index·B + b: T + 1 consecutive tokens s, with tokens = s[0..T) and
  // targets = s[1..T]. Thread-compatible: const calls may run concurrently.
  virtual void FillBatch(int64_t index, Tensor& tokens, Tensor& targets) const = 0;
};

struct BatchSources {
  std::unique_ptr<TokenBatchSource> train;
  std::unique_ptr<TokenBatchSource> eval;  // null when train.eval_interval is 0
};

// The config must have passed ValidateTrainConfig. Errors (a token file that is missing, too
// short or holds a token ≥ model.vocab_size) name the file.
absl::StatusOr<BatchSources> OpenBatchSources(const config::TrainConfig& config);

}  // namespace aoetron
