#include "data/dataset_verify.h"

#include <algorithm>
#include <climits>

#include "data/sharded_dataset.h"

namespace aoetron::data {

absl::StatusOr<DatasetStats> ComputeDatasetStats(const std::string& path) {
  absl::StatusOr<std::unique_ptr<ShardedDataset>> ds = ShardedDataset::Open(path);
  if (!ds.ok()) return ds.status();
  DatasetStats stats;
  stats.shards = static_cast<int64_t>((*ds)->shards().size());
  stats.documents = (*ds)->num_documents();
  stats.sequences = (*ds)->num_sequences();
  stats.tokens = (*ds)->num_tokens();
  stats.text_bytes = (*ds)->text_bytes();
  stats.vocab_size = (*ds)->vocab_size();
  stats.min_sequence_length = stats.sequences > 0 ? INT32_MAX : 0;
  for (const auto& shard : (*ds)->shards()) {
    stats.bin_bytes += static_cast<int64_t>(shard->bin_bytes());
    for (int64_t i = 0; i < shard->num_sequences(); ++i) {
      stats.min_sequence_length = std::min(stats.min_sequence_length, shard->sequence_length(i));
      stats.max_sequence_length = std::max(stats.max_sequence_length, shard->sequence_length(i));
    }
  }
  return stats;
}

absl::StatusOr<DatasetStats> VerifyDataset(const std::string& path, int64_t vocab_size) {
  absl::StatusOr<DatasetStats> stats = ComputeDatasetStats(path);
  if (!stats.ok()) return stats.status();
  if (vocab_size <= 0) vocab_size = stats->vocab_size;
  if (vocab_size <= 0) {
    return absl::InvalidArgumentError(path +
                                      ": no manifest gives the vocabulary size; pass --vocab-size");
  }
  absl::StatusOr<std::unique_ptr<ShardedDataset>> ds = ShardedDataset::Open(path);
  if (!ds.ok()) return ds.status();
  for (const auto& shard : (*ds)->shards()) {
    if (absl::Status s = shard->CheckTokens(vocab_size, /*allow_empty_sequences=*/false); !s.ok()) {
      return s;
    }
  }
  stats->vocab_size = vocab_size;
  return stats;
}

}  // namespace aoetron::data
