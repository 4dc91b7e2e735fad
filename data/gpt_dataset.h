// GptDataset: GPT training samples of one token dataset's split (Megatron's GPTDataset).
//
// Sample i is seq_length + 1 consecutive tokens (gpt_sample_index.h); the loader makes inputs
// from the first seq_length and targets from the last seq_length. Sample indices are cached on
// disk (sample_index_cache.h); with several ranks, the one with build_indices builds and the
// others wait for its file.
//
// Ownership: shares the ShardedDataset. Thread safety: immutable after Create; GetSample may be
// called from several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/gpt_sample_index.h"
#include "data/sharded_dataset.h"

namespace aoetron::data {

struct GptDatasetOptions {
  int64_t seq_length = 0;
  // Samples wanted; 0 = one epoch's worth. The index holds at least this many.
  int64_t num_samples = 0;
  uint64_t seed = 1234;
  std::vector<double> split_ratios = {969, 30, 1};
  std::string split = "train";  // train | valid | test
  SampleOrder order = SampleOrder::kMegatronCore;
  // Where sample indices are cached; "" = <dataset directory>/index-cache.
  std::string cache_dir;
  // True on the one process that builds missing indices; the others wait for them.
  bool build_indices = true;
  double wait_timeout_seconds = 600;
};

class GptDataset {
 public:
  static absl::StatusOr<std::unique_ptr<GptDataset>> Create(
      std::shared_ptr<const ShardedDataset> data, const GptDatasetOptions& options);

  int64_t num_samples() const { return index_.num_samples(); }
  int64_t seq_length() const { return index_.seq_length; }
  // Writes the seq_length + 1 tokens of sample (i mod num_samples()) to out.
  void GetSample(int64_t i, int32_t* out) const;

  const GptSampleIndex& index() const { return index_; }
  const ShardedDataset& data() const { return *data_; }
  const std::string& cache_path() const { return cache_path_; }
  // Sequence ids [begin, end) of this split.
  std::pair<int64_t, int64_t> split_range() const { return split_range_; }

 private:
  GptDataset() = default;
  std::shared_ptr<const ShardedDataset> data_;
  GptSampleIndex index_;
  std::string cache_path_;
  std::pair<int64_t, int64_t> split_range_;
};

}  // namespace aoetron::data
