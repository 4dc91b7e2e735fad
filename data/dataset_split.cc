#include "data/dataset_split.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace aoetron::data {

absl::StatusOr<std::vector<std::pair<int64_t, int64_t>>> ComputeSplitRanges(
    const std::vector<double>& ratios, int64_t n) {
  double sum = 0;
  for (double r : ratios) {
    if (!(r >= 0) || !std::isfinite(r)) {
      return absl::InvalidArgumentError("split ratios must be finite and >= 0");
    }
    sum += r;
  }
  if (ratios.empty() || sum <= 0) {
    return absl::InvalidArgumentError("split ratios must have a positive sum");
  }
  std::vector<int64_t> bounds{0};
  for (double r : ratios) {
    // Python's round() rounds half to even, as nearbyint does in the default rounding mode.
    bounds.push_back(bounds.back() + static_cast<int64_t>(std::nearbyint(r / sum * n)));
  }
  const int64_t diff = bounds.back() - n;
  for (size_t i = 1; i < bounds.size(); ++i) bounds[i] -= diff;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (size_t i = 0; i + 1 < bounds.size(); ++i) {
    ranges.emplace_back(std::max<int64_t>(0, bounds[i]), std::max<int64_t>(0, bounds[i + 1]));
  }
  return ranges;
}

absl::StatusOr<int> SplitIndexOf(const std::string& name) {
  if (name == "train") return 0;
  if (name == "valid" || name == "validation") return 1;
  if (name == "test") return 2;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown split '", name, "': expected train, valid or test"));
}

}  // namespace aoetron::data
