#include "launcher/token_sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/check.h"
#include "core/rng.h"

namespace aoetron {

int32_t SampleToken(std::span<const float> logits, const SamplingOptions& options, int64_t step) {
  const int64_t vocab = static_cast<int64_t>(logits.size());
  AOETRON_CHECK(vocab >= 1) << "SampleToken: no logits";
  std::vector<int32_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  // Decreasing logit, lower id first on ties: a total order, so the sort is deterministic.
  auto before = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  if (options.temperature <= 0.0) return *std::min_element(order.begin(), order.end(), before);
  const int64_t keep = options.top_k > 0 ? std::min<int64_t>(options.top_k, vocab) : vocab;
  std::partial_sort(order.begin(), order.begin() + keep, order.end(), before);
  order.resize(keep);
  const double top = logits[order[0]];
  std::vector<double> weight(keep);
  double total = 0.0;
  for (int64_t i = 0; i < keep; ++i) {
    weight[i] = std::exp((logits[order[i]] - top) / options.temperature);
    total += weight[i];
  }
  if (options.top_p < 1.0) {
    double mass = 0.0;
    int64_t cut = 0;
    while (cut < keep && mass < options.top_p * total) mass += weight[cut++];
    order.resize(std::max<int64_t>(cut, 1));
    weight.resize(order.size());
    total = mass > 0 ? mass : weight[0];
  }
  const double u = UniformAt(options.seed, StableHash("sample"), static_cast<uint64_t>(step));
  double cumulative = 0.0;
  for (size_t i = 0; i < order.size(); ++i) {
    cumulative += weight[i];
    if (cumulative > u * total) return order[i];
  }
  return order.back();
}

}  // namespace aoetron
