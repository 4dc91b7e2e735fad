// Exclusive prefix sums of counts: the offsets of consecutive blocks.
#pragma once

#include <cstdint>
#include <vector>

namespace aoetron {

// offsets[0] = 0, offsets[i + 1] = offsets[i] + counts[i]: counts.size() + 1 entries, the block
// of item i being [offsets[i], offsets[i + 1]).
template <typename T>
std::vector<int64_t> BlockOffsets(const std::vector<T>& counts) {
  std::vector<int64_t> offsets(counts.size() + 1, 0);
  for (size_t i = 0; i < counts.size(); ++i) {
    offsets[i + 1] = offsets[i] + static_cast<int64_t>(counts[i]);
  }
  return offsets;
}

}  // namespace aoetron
