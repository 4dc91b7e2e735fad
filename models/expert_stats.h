// Per-layer expert-load diagnostics (AOE.md "Diagnostics") of one micro-batch.
//
// Under data/expert parallelism every routing statistic is GLOBAL: computed over the global
// micro-batch (this micro-batch on every rank of the data-parallel group, f and P summed across
// dp ⊇ ep), so it is identical on every rank and does not depend on the layout. Only `dispatch`
// is this rank's own view.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "parallel/expert_dispatcher.h"

namespace aoetron {

struct ExpertLoadStats {
  std::vector<int64_t> tokens_per_expert;  // pairs routed to each expert (Σ = T·K), global
  double load_fraction_min = 0.0;          // min_i f_i / K   (f_i as in AOE.md, so Σ f̂ = 1)
  double load_fraction_max = 0.0;          // max_i f_i / K
  double entropy_load = 0.0;               // Ent_load = −Σ f̂_i log f̂_i  (max ln n)
  double entropy_confidence = 0.0;         // Ent_conf = mean_t −Σ_i q_ti log q_ti
  double aux_loss = 0.0;                   // this layer's α·n·Σ f_i P_i
  double z_loss = 0.0;                     // this layer's coeff · mean_t logsumexp(scores_t)²
  // Load of the expert-parallel shards: pairs routed to the experts of ep rank p (all replicas),
  // max over p divided by the mean over p. 1 = perfectly even; 1 with ep = 1.
  double ep_load_max_over_mean = 1.0;
  int64_t dropped_pairs = 0;  // pairs over capacity, global (0 when dropless)
  // This rank's dispatch traffic and time for this layer (zero bytes with ep = 1).
  parallel::DispatchStats dispatch;
};

// The shares f̂_i = counts_i / Σ counts of the experts' pairs: their min, max and entropy
// −Σ f̂_i ln f̂_i (0·ln 0 = 0; max ln n). All zero when there are no pairs. The one summary of
// expert load: each micro-batch's (RoutedFeedForward) and each step's (SummariseExpertLoad).
struct LoadShareSummary {
  double min = 0.0, max = 0.0, entropy = 0.0;
};
inline LoadShareSummary SummariseLoadShares(const std::vector<int64_t>& counts) {
  int64_t pairs = 0;
  for (const int64_t count : counts) pairs += count;
  LoadShareSummary summary;
  if (pairs == 0) return summary;
  summary.min = 1.0;
  for (const int64_t count : counts) {
    const double share = static_cast<double>(count) / static_cast<double>(pairs);
    summary.min = std::min(summary.min, share);
    summary.max = std::max(summary.max, share);
    if (share > 0) summary.entropy -= share * std::log(share);
  }
  return summary;
}

// Load of the expert-parallel shards from per-expert pair counts: ep rank p holds experts
// [p·n/ep, (p+1)·n/ep); returns max over p of its pairs divided by the mean over p (1 when
// there are no pairs or ep_ranks ≤ 1). n must be a multiple of ep_ranks.
inline double EpLoadMaxOverMean(const std::vector<int64_t>& tokens_per_expert, int64_t ep_ranks) {
  if (ep_ranks <= 1 || tokens_per_expert.empty()) return 1.0;
  const size_t per_rank = tokens_per_expert.size() / static_cast<size_t>(ep_ranks);
  int64_t max_load = 0, total_load = 0;
  for (size_t begin = 0; begin < tokens_per_expert.size(); begin += per_rank) {
    int64_t load = 0;
    for (size_t e = begin; e < begin + per_rank; ++e) load += tokens_per_expert[e];
    max_load = std::max(max_load, load);
    total_load += load;
  }
  return total_load > 0 ? static_cast<double>(max_load) * static_cast<double>(ep_ranks) /
                              static_cast<double>(total_load)
                        : 1.0;
}

}  // namespace aoetron
