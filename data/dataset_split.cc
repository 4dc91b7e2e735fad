#include "data/dataset_split.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "data/numpy_sum.h"

namespace aoetron::data {
namespace {

// Python's round() of a float: half to even, which nearbyint does in the default rounding mode.
int64_t PythonRound(double x) { return static_cast<int64_t>(std::nearbyint(x)); }

std::vector<std::pair<int64_t, int64_t>> MegatronCoreRanges(const std::vector<double>& ratios,
                                                            int64_t n) {
  const std::vector<double> w = MegatronNormalize(ratios);
  std::vector<double> bookends{0.0};
  for (double share : w) bookends.push_back(bookends.back() + share);
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (size_t i = 0; i + 1 < bookends.size(); ++i) {
    if (bookends[i + 1] <= bookends[i]) {
      ranges.emplace_back(0, 0);  // Megatron-Core builds no dataset for this split
      continue;
    }
    ranges.emplace_back(PythonRound(bookends[i] * static_cast<double>(n)),
                        PythonRound(bookends[i + 1] * static_cast<double>(n)));
  }
  return ranges;
}

std::vector<std::pair<int64_t, int64_t>> LegacyRanges(const std::vector<double>& ratios, double sum,
                                                      int64_t n) {
  std::vector<int64_t> bounds{0};
  for (double r : ratios) bounds.push_back(bounds.back() + PythonRound(r / sum * n));
  const int64_t diff = bounds.back() - n;
  for (size_t i = 1; i < bounds.size(); ++i) bounds[i] -= diff;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (size_t i = 0; i + 1 < bounds.size(); ++i) {
    ranges.emplace_back(std::max<int64_t>(0, bounds[i]), std::max<int64_t>(0, bounds[i + 1]));
  }
  return ranges;
}

}  // namespace

absl::StatusOr<std::vector<std::pair<int64_t, int64_t>>> ComputeSplitRanges(
    const std::vector<double>& ratios, int64_t n, SampleOrder order) {
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
  return order == SampleOrder::kMegatronCore ? MegatronCoreRanges(ratios, n)
                                             : LegacyRanges(ratios, sum, n);
}

absl::StatusOr<int> SplitIndexOf(const std::string& name) {
  if (name == "train") return 0;
  if (name == "valid" || name == "validation") return 1;
  if (name == "test") return 2;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown split '", name, "': expected train, valid or test"));
}

}  // namespace aoetron::data
