// GptDataLoader: this data-parallel rank's share of every global batch of GPT samples, from a
// weighted blend of token datasets, prefetched on a background thread.
//
// Sample order. The blend (blending.h) of the datasets' split (gpt_dataset.h) is one sequence
// of samples 0, 1, 2, ... identical on every rank. Megatron's pretraining sampler hands it out
// in micro-batch steps of micro_batch_size · dp_size samples; rank r takes the r-th slice:
//     step k covers samples [c, c + mbs·dp) with c = consumed_samples before the step,
//     rank r reads samples  [c + r·mbs, c + (r+1)·mbs).
// A global batch is global_batch_size / (mbs·dp) such steps. The loader's whole state is
// consumed_samples (global, all ranks counted): a loader created with the consumed_samples saved
// in a checkpoint continues exactly where the saved run stopped, on any rank.
// Past the end of the sample space (num_samples()) the order wraps around.
//
// Each sample is seq_length + 1 tokens t; the batch holds inputs t[0..L) and targets t[1..L]
// (the next-token shift), both int32, row-major [micro_batch_size, seq_length].
//
// Sample indices are cached on disk (sample_index_cache.h). The process with build_indices
// builds missing ones; the others wait for its files, so cache_dir must be visible to all of
// them — on nodes without a shared filesystem, let local rank 0 of every node build (several
// builders are harmless: they write identical files atomically).
//
// Errors: Create returns InvalidArgument/NotFound for bad configuration or data (naming the
// file) and DeadlineExceeded when the builder's index does not appear in time; Next returns the
// first error met by the prefetch thread (a token >= vocab_size, when vocab_size is set), and
// keeps returning it.
// Ownership: owns its datasets and thread. Thread safety: one thread calls Next(); the
// destructor stops the prefetch thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "data/blending.h"
#include "data/gpt_dataset.h"

namespace aoetron::data {

struct WeightedDataset {
  std::string path;  // a sharded dataset prefix or a Megatron .bin/.idx prefix
  double weight = 1.0;
};

struct GptDataLoaderConfig {
  std::vector<WeightedDataset> datasets;
  std::vector<double> split_ratios = {969, 30, 1};
  std::string split = "train";  // train | valid | test
  int64_t seq_length = 0;
  int64_t global_batch_size = 0;
  int64_t micro_batch_size = 0;  // per rank; 0 = global_batch_size / dp_size
  int dp_rank = 0;
  int dp_size = 1;
  uint64_t seed = 1234;
  // Which rules build the sample order (sample_order.h): Megatron-Core's unless a run started
  // under the legacy order must resume on the same samples.
  SampleOrder order = SampleOrder::kMegatronCore;
  // Samples the run will consume from this split (e.g. train_iters · global_batch_size); 0 = one
  // epoch of the data (with a blend: until the first dataset runs out of its epoch).
  int64_t num_samples = 0;
  std::string cache_dir;  // "" = index-cache/ beside each dataset
  // True on exactly one process (normally global rank 0): it builds missing sample indices; the
  // others wait up to wait_timeout_seconds for its files.
  bool build_indices = true;
  double wait_timeout_seconds = 600;
  // When > 0, every token read is checked to be < vocab_size (and each dataset's manifest
  // vocabulary, when known, must not exceed it).
  int64_t vocab_size = 0;
  int prefetch_depth = 4;  // micro-batches prepared ahead
};

struct GptBatch {
  int64_t batch_size = 0;  // rows: micro_batch_size
  int64_t seq_length = 0;
  std::vector<int32_t> tokens;   // [batch_size, seq_length] inputs
  std::vector<int32_t> targets;  // [batch_size, seq_length] next tokens
  int64_t first_sample = 0;      // global sample number of row 0
};

// The blend itself, without batching: sample i -> seq_length + 1 tokens.
class BlendedGptDataset {
 public:
  static absl::StatusOr<std::unique_ptr<BlendedGptDataset>> Create(
      const GptDataLoaderConfig& config);
  int64_t num_samples() const { return num_samples_; }
  int64_t seq_length() const { return seq_length_; }
  // Writes the seq_length + 1 tokens of blended sample (i mod num_samples()) to out; checks them
  // against vocab_size when set.
  absl::Status GetSample(int64_t i, int32_t* out) const;
  const std::vector<std::unique_ptr<GptDataset>>& datasets() const { return datasets_; }

 private:
  BlendedGptDataset() = default;
  std::vector<std::unique_ptr<GptDataset>> datasets_;  // null for weight-0 datasets
  BlendingIndex blend_;                                // over the datasets of weight > 0
  std::vector<int> blend_datasets_;                    // blend_'s dataset k -> datasets_ index
  bool single_ = false;
  int64_t num_samples_ = 0;
  int64_t seq_length_ = 0;
  int64_t vocab_size_ = 0;
};

class GptDataLoader {
 public:
  // Starts prefetching from `consumed_samples`, which must be a multiple of
  // micro_batch_size · dp_size.
  static absl::StatusOr<std::unique_ptr<GptDataLoader>> Create(const GptDataLoaderConfig& config,
                                                               int64_t consumed_samples = 0);
  ~GptDataLoader();
  GptDataLoader(const GptDataLoader&) = delete;
  GptDataLoader& operator=(const GptDataLoader&) = delete;

  // This rank's next micro-batch; advances consumed_samples() by micro_batch_size · dp_size.
  absl::StatusOr<GptBatch> Next();
  int64_t consumed_samples() const { return consumed_samples_; }
  int64_t micro_batch_size() const { return micro_batch_size_; }
  // Micro-batches per global batch for one rank: global_batch_size / (micro_batch_size · dp).
  int64_t micro_batches_per_global_batch() const { return micro_batches_per_global_batch_; }
  const BlendedGptDataset& dataset() const { return *dataset_; }

 private:
  GptDataLoader() = default;
  absl::StatusOr<GptBatch> MakeBatch(int64_t step_start) const;
  void PrefetchLoop(int64_t next_step_start);

  GptDataLoaderConfig config_;
  std::unique_ptr<BlendedGptDataset> dataset_;
  int64_t micro_batch_size_ = 0;
  int64_t micro_batches_per_global_batch_ = 0;
  int64_t consumed_samples_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<absl::StatusOr<GptBatch>> ready_;  // guarded by mu_
  bool stop_ = false;                           // guarded by mu_
  std::thread prefetcher_;
};

}  // namespace aoetron::data
