// Train/valid/test split by ratio: which of a dataset's n sequences each split reads.
//
// SampleOrder::kMegatronCore, as Megatron-Core computes it (parse_and_normalize_split,
// convert_split_vector_to_split_matrix and _build_megatron_dataset_splits):
//     w = ratios / numpy.sum(ratios)                   (MegatronNormalize)
//     e_0 = 0, e_{i+1} = e_i + w_i                     (left to right, in double)
//     split i = [round(e_i · n), round(e_{i+1} · n))   (round half to even), empty when
//                                                      e_{i+1} ≤ e_i
// SampleOrder::kAoetronV1, the legacy Megatron rule (get_split_indices of megatron/data): each
// size round(ratio_i / sum · n), the rounding error taken off every boundary so that the last
// range ends at n.
// The two differ for about a quarter of document counts at 969,30,1.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "data/sample_order.h"

namespace aoetron::data {

// Ranges [begin, end) per ratio. InvalidArgument for negative ratios or a zero sum.
absl::StatusOr<std::vector<std::pair<int64_t, int64_t>>> ComputeSplitRanges(
    const std::vector<double>& ratios, int64_t n, SampleOrder order = SampleOrder::kMegatronCore);

// "train" -> 0, "valid" (or "validation") -> 1, "test" -> 2; InvalidArgument otherwise.
absl::StatusOr<int> SplitIndexOf(const std::string& name);

}  // namespace aoetron::data
