// DispatchLayout: where every (token, expert) pair of one rank's micro-batch goes under expert
// parallelism, computed on the source rank from its own top-K choices — no communication.
//
// The ep group holds the n experts in contiguous blocks of E = n / ep (ProcessGrid::
// LocalExperts): expert e lives on ep rank e / E as local expert e mod E. A token t chose
// experts expert_index[t, 0..K). For every destination rank p the layout lists
//   - the DISTINCT tokens that have at least one kept pair on p (each token's x row goes to p
//     once, however many of its K experts live there — DeepEP's rule, not Megatron's one copy
//     per pair), in token order;
//   - the kept pairs for p, in (token, j) order, each with its local expert id on p and the
//     index of its token among the distinct tokens sent to p.
// Send buffers are grouped by destination rank 0, 1, ..., ep-1 in that order.
//
// Capacity (optional): keep_limit[e] caps the pairs of expert e this rank keeps; the first
// keep_limit[e] pairs of e in token order are kept, later ones dropped (not sent; their output
// is zero). KeepLimits() turns a global capacity into per-rank limits so that, over the whole
// data-parallel group, expert e keeps the first `capacity` pairs in global token order.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/ops/expert_permute.h"
#include "core/tensor.h"

namespace aoetron::parallel {

struct DispatchLayout {
  int64_t tokens = 0;            // N
  int64_t top_k = 0;             // K
  int64_t num_experts = 0;       // n
  int64_t experts_per_rank = 0;  // E = n / ep
  int ep_size = 1;

  // Per destination rank p (size ep):
  std::vector<int64_t> send_tokens;        // distinct tokens with a kept pair on p
  std::vector<int64_t> send_pairs;         // kept pairs for p
  std::vector<int64_t> send_token_offset;  // Σ_{q<p} send_tokens[q]  (size ep + 1)
  std::vector<int64_t> send_pair_offset;   // Σ_{q<p} send_pairs[q]   (size ep + 1)

  // Per sent x row k in [0, Σ send_tokens): the local token it carries.
  std::vector<int32_t> sent_token;
  // Per kept pair slot s in [0, Σ send_pairs): (token, global expert) and the metadata the
  // destination needs: (local expert id on p, row of its token among the tokens sent to p).
  std::vector<int32_t> slot_token;
  std::vector<int32_t> slot_expert;
  std::vector<int32_t> slot_metadata;  // [kept pairs, 2]

  // pair_slot[t, j]: pair (t, j)'s row in the source-side pair buffers: kept pairs at their
  // slot in [0, kept), dropped pairs after them in (t, j) order — a permutation of [0, N·K),
  // so the combine ops (core/ops/expert_permute.h) can use it as their `position`.
  Tensor pair_slot;  // i32 [N, K]
  // token_row[t·ep + p]: row of token t among the tokens sent to p (−1: none sent).
  std::vector<int32_t> token_row;

  int64_t kept_pairs() const { return send_pair_offset.back(); }
  int64_t sent_token_rows() const { return send_token_offset.back(); }
  int64_t dropped_pairs() const { return tokens * top_k - kept_pairs(); }
  int DestinationOf(int64_t expert) const { return static_cast<int>(expert / experts_per_rank); }
};

// expert_index: i32 [N, K], entries in [0, num_experts); ep_size divides num_experts.
// keep_limit: empty (dropless) or one limit per expert.
// Reuses `layout`'s vectors (no heap churn from step to step).
void BuildDispatchLayout(const Tensor& expert_index, int64_t num_experts, int ep_size,
                         std::span<const int64_t> keep_limit, DispatchLayout& layout);

// Capacity per expert for a global micro-batch of `global_tokens` tokens:
// ceil(capacity_factor · global_tokens · K / n); 0 when capacity_factor is 0 (dropless).
int64_t ExpertCapacity(double capacity_factor, int64_t global_tokens, int64_t top_k,
                       int64_t num_experts);

// counts_by_rank: [dp][n] pairs routed to each expert by each data-parallel rank, in dp rank
// order (which is global token order). Returns this rank's keep_limit[e] =
// clamp(capacity − Σ_{q < dp_rank} counts[q][e], 0, counts[dp_rank][e]), so the kept pairs of
// expert e over the whole group are its first `capacity` pairs in global token order.
std::vector<int64_t> KeepLimits(std::span<const int64_t> counts_by_rank, int64_t num_experts,
                                int dp_rank, int64_t capacity);

}  // namespace aoetron::parallel
