#include "parallel/dispatch_layout.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "core/prefix_sum.h"

namespace aoetron::parallel {
namespace {

// The checks every layout builder shares; returns the pair count N·K.
int64_t CheckExpertIndex(const char* what, const Tensor& expert_index, int64_t num_experts,
                         std::span<const int64_t> keep_limit) {
  AOETRON_CHECK(expert_index.defined() && expert_index.rank() == 2 &&
                expert_index.dtype() == DType::kI32 && expert_index.device().is_cpu())
      << what << ": expert_index must be an i32 [N, K] CPU tensor, got "
      << expert_index.DebugString();
  AOETRON_CHECK(keep_limit.empty() || static_cast<int64_t>(keep_limit.size()) == num_experts)
      << what << ": " << keep_limit.size() << " keep limits for " << num_experts << " experts";
  const int64_t pairs = expert_index.numel();
  AOETRON_CHECK(pairs <= INT32_MAX) << what << ": " << pairs << " pairs overflow i32 rows";
  const int32_t* index = expert_index.data<int32_t>();
  for (int64_t q = 0; q < pairs; ++q) {
    AOETRON_CHECK(index[q] >= 0 && index[q] < num_experts)
        << what << ": expert_index entry " << q << " = " << index[q] << " is outside [0, "
        << num_experts << ")";
  }
  return pairs;
}

}  // namespace

void BuildDispatchLayout(const Tensor& expert_index, int64_t num_experts, int ep_size,
                         std::span<const int64_t> keep_limit, DispatchLayout& layout) {
  constexpr const char* kWhat = "BuildDispatchLayout";
  const int64_t pairs = CheckExpertIndex(kWhat, expert_index, num_experts, keep_limit);
  AOETRON_CHECK(ep_size >= 1 && num_experts % ep_size == 0)
      << kWhat << ": " << num_experts << " experts do not split over " << ep_size << " ranks";
  const int64_t n = expert_index.dim(0), k = expert_index.dim(1);
  const int32_t* index = expert_index.data<int32_t>();
  layout.tokens = n;
  layout.top_k = k;
  layout.num_experts = num_experts;
  layout.experts_per_rank = num_experts / ep_size;
  layout.ep_size = ep_size;
  const int64_t per_rank = layout.experts_per_rank;

  // 1. keep: with limits, a pair is kept while its expert has budget left, in (t, j) order.
  //    kept[q] is reused below as "slot not yet known" (1) / dropped (0).
  std::vector<char> kept(pairs, 1);
  if (!keep_limit.empty()) {
    std::vector<int64_t> left(keep_limit.begin(), keep_limit.end());
    for (int64_t q = 0; q < pairs; ++q) {
      int64_t& budget = left[index[q]];
      if (budget > 0) {
        --budget;
      } else {
        kept[q] = 0;
      }
    }
  }

  // 2. count: distinct tokens and kept pairs per destination. A token counts once per rank.
  layout.send_tokens.assign(ep_size, 0);
  layout.send_pairs.assign(ep_size, 0);
  layout.token_row.assign(n * ep_size, -1);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      if (!kept[t * k + j]) continue;
      const int p = static_cast<int>(index[t * k + j] / per_rank);
      ++layout.send_pairs[p];
      int32_t& row = layout.token_row[t * ep_size + p];
      if (row < 0) row = static_cast<int32_t>(layout.send_tokens[p]++);
    }
  }
  layout.send_token_offset = BlockOffsets(layout.send_tokens);
  layout.send_pair_offset = BlockOffsets(layout.send_pairs);

  // 3. place: slots in (destination, token, j) order; dropped pairs after all kept ones.
  const int64_t kept_pairs = layout.send_pair_offset.back();
  layout.sent_token.resize(layout.send_token_offset.back());
  layout.slot_token.resize(kept_pairs);
  layout.slot_expert.resize(kept_pairs);
  layout.slot_metadata.resize(2 * kept_pairs);
  if (!layout.pair_slot.defined() || layout.pair_slot.shape() != expert_index.shape()) {
    layout.pair_slot = Tensor::Empty(expert_index.shape(), DType::kI32);
  }
  int32_t* slot_of = layout.pair_slot.data<int32_t>();
  std::vector<int64_t> pair_cursor(layout.send_pair_offset.begin(),
                                   layout.send_pair_offset.end() - 1);
  int64_t dropped_cursor = kept_pairs;
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      const int64_t q = t * k + j;
      if (!kept[q]) {
        slot_of[q] = static_cast<int32_t>(dropped_cursor++);
        continue;
      }
      const int32_t e = index[q];
      const int p = static_cast<int>(e / per_rank);
      const int32_t row = layout.token_row[t * ep_size + p];
      layout.sent_token[layout.send_token_offset[p] + row] = static_cast<int32_t>(t);
      const int64_t s = pair_cursor[p]++;
      slot_of[q] = static_cast<int32_t>(s);
      layout.slot_token[s] = static_cast<int32_t>(t);
      layout.slot_expert[s] = e;
      layout.slot_metadata[2 * s] = static_cast<int32_t>(e - p * per_rank);
      layout.slot_metadata[2 * s + 1] = row;
    }
  }
}

int64_t ExpertCapacity(double capacity_factor, int64_t global_tokens, int64_t top_k,
                       int64_t num_experts) {
  AOETRON_CHECK(capacity_factor >= 0) << "capacity factor " << capacity_factor;
  if (capacity_factor == 0) return 0;
  return static_cast<int64_t>(
      std::ceil(capacity_factor * static_cast<double>(global_tokens) * static_cast<double>(top_k) /
                static_cast<double>(num_experts)));
}

std::vector<int64_t> KeepLimits(std::span<const int64_t> counts_by_rank, int64_t num_experts,
                                int dp_rank, int64_t capacity) {
  AOETRON_CHECK(num_experts >= 1 && counts_by_rank.size() % num_experts == 0 && dp_rank >= 0 &&
                static_cast<int64_t>(counts_by_rank.size()) >= (dp_rank + 1) * num_experts)
      << "KeepLimits: " << counts_by_rank.size() << " counts for " << num_experts
      << " experts and dp rank " << dp_rank;
  std::vector<int64_t> limit(num_experts);
  for (int64_t e = 0; e < num_experts; ++e) {
    int64_t before = 0;  // pairs of e on lower data-parallel ranks (earlier global tokens)
    for (int q = 0; q < dp_rank; ++q) before += counts_by_rank[q * num_experts + e];
    limit[e] = std::clamp<int64_t>(capacity - before, 0, counts_by_rank[dp_rank * num_experts + e]);
  }
  return limit;
}

}  // namespace aoetron::parallel
