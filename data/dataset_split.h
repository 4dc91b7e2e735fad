// Train/valid/test split by ratio, as Megatron computes it (get_split_indices): the n sequences
// of a dataset are cut into consecutive ranges whose sizes are round(ratio_i / sum · n), with
// the rounding error taken off every boundary so that the last range ends at n.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace aoetron::data {

// Ranges [begin, end) per ratio. InvalidArgument for negative ratios or a zero sum.
absl::StatusOr<std::vector<std::pair<int64_t, int64_t>>> ComputeSplitRanges(
    const std::vector<double>& ratios, int64_t n);

// "train" -> 0, "valid" (or "validation") -> 1, "test" -> 2; InvalidArgument otherwise.
absl::StatusOr<int> SplitIndexOf(const std::string& name);

}  // namespace aoetron::data
