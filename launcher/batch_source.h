// Where the trainer's tokens come from.
//
// Two layers:
//  - TokenBatchSource: a deterministic, random-access stream of micro-batches (synthetic and
//    token_file data). Micro-batch `index` is a pure function of the source's settings (seed,
//    file) and `index`: asking twice gives the same tokens, whatever was asked in between.
//    OpenBatchSources builds the training and held-out sources from the config.
//  - What the trainer consumes, for every data source (OpenDataStreams): a TrainBatchStream,
//    this data-parallel rank's micro-batches in order, whose whole state is the number of
//    samples consumed by all ranks together; and an EvalBatchSource, held-out micro-batches by
//    index.
//
// Sample order across data-parallel ranks (Megatron's pretraining sampler, the same for every
// source): the training samples form one sequence 0, 1, 2, ...; a micro-batch step hands out
// micro_batch_size · dp consecutive samples, and rank r takes the r-th block of
// micro_batch_size. With c samples consumed before the step, rank r reads samples
// [c + r·mbs, c + (r+1)·mbs). So a global batch holds the same samples whatever dp is, and each
// micro-batch holds the same samples as micro-batch (c/mbs + r) of a one-rank run.
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

// This rank's place in data parallelism, and where the stream starts.
struct DataParallelPosition {
  int dp_rank = 0;
  int dp_size = 1;
  // True on exactly one process (global rank 0): it builds missing sample indices (indexed
  // source); the others wait for its files.
  bool build_indices = true;
  // Samples consumed by all dp ranks together before this stream starts (resume); a multiple
  // of micro_batch_size · dp_size.
  int64_t consumed_samples = 0;
};

// This data-parallel rank's training micro-batches, in order. Not thread-safe.
class TrainBatchStream {
 public:
  virtual ~TrainBatchStream() = default;
  // Fills `tokens` and `targets` (i32 [micro_batch_size, seq_len], CPU) with this rank's next
  // micro-batch and advances consumed_samples() by micro_batch_size · dp_size. Errors (a token
  // ≥ model.vocab_size in an indexed dataset) name the file; after one, the stream is done.
  virtual absl::Status Next(Tensor& tokens, Tensor& targets) = 0;
  // Samples consumed by all data-parallel ranks together: the stream's whole state. A stream
  // opened with DataParallelPosition::consumed_samples = this value continues exactly here.
  virtual int64_t consumed_samples() const = 0;
};

// Held-out micro-batches by index: micro-batch i is held-out samples [i·mbs, (i+1)·mbs).
class EvalBatchSource {
 public:
  virtual ~EvalBatchSource() = default;
  // Same shapes as TrainBatchStream::Next. Thread-compatible.
  virtual absl::Status Fill(int64_t index, Tensor& tokens, Tensor& targets) const = 0;
};

struct DataStreams {
  std::unique_ptr<TrainBatchStream> train;
  std::unique_ptr<EvalBatchSource> eval;  // null when train.eval_interval is 0
};

// Opens the streams of any data.source for this rank. The config must have passed
// ValidateTrainConfig. Errors name the data file or field.
absl::StatusOr<DataStreams> OpenDataStreams(const config::TrainConfig& config,
                                            const DataParallelPosition& position);

// Adapters from random-access sources (exposed for tests). The train stream reads micro-batch
// index c/mbs + dp_rank of `source` and advances c by mbs·dp_size; the eval source forwards.
std::unique_ptr<TrainBatchStream> MakeRandomAccessTrainStream(
    std::unique_ptr<TokenBatchSource> source, int64_t micro_batch_size,
    const DataParallelPosition& position);
std::unique_ptr<EvalBatchSource> MakeRandomAccessEvalSource(
    std::unique_ptr<TokenBatchSource> source);

}  // namespace aoetron
