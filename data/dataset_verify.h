// Checking and describing token datasets (aoetron-data verify / stats).
//
// VerifyDataset opens the dataset (all structural checks of indexed_dataset.h and
// sharded_dataset.h: sizes, offsets, document boundaries, manifest counts) and then reads every
// token: each must be < vocab_size, and no sequence may be empty. The first problem is returned
// as an error naming the file and byte offset.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace aoetron::data {

struct DatasetStats {
  int64_t shards = 0;
  int64_t documents = 0;
  int64_t sequences = 0;
  int64_t tokens = 0;
  int64_t text_bytes = 0;  // 0 when unknown (a plain Megatron pair)
  int64_t vocab_size = 0;  // 0 when unknown
  int64_t bin_bytes = 0;
  int32_t min_sequence_length = 0;
  int32_t max_sequence_length = 0;
};

// vocab_size 0: take it from the manifest (InvalidArgument when there is none).
absl::StatusOr<DatasetStats> VerifyDataset(const std::string& path, int64_t vocab_size);
// Structure checks and counts only (no token scan).
absl::StatusOr<DatasetStats> ComputeDatasetStats(const std::string& path);

}  // namespace aoetron::data
