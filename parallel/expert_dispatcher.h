// ExpertDispatcher: moves (token, expert) pairs from the rank that owns the tokens to the rank
// that owns the expert and brings the expert outputs back — the all-to-all token dispatcher of
// Megatron-Core, written as numbered stages, with DeepEP's rule that a token's hidden state goes
// to a rank once however many of its experts live there. Router MoE and AoE use the same code;
// AoE's pairs also carry their cached C_i (AOE.md "AoE under expert parallelism").
//
// Forward (source rank = the rank holding the tokens; expert rank = the rank holding the expert):
//   D1 layout     per pair its destination ep rank; per destination the distinct tokens
//                 (DispatchLayout, parallel/dispatch_layout.h). No communication.
//   D2 counts     one AllToAllV of (tokens, pairs) per peer, so every rank sizes its receives.
//   D3 permute    send payload, grouped by destination rank p:
//                   [pair metadata for p: (local expert id, token row) as i32, padded to whole
//                    payload rows] [distinct tokens for p: x rows (d)] [kept pairs for p: gate
//                    rows (g)]
//   D4 exchange   one AllToAllV of the payload (metadata included: 3 collectives per forward,
//                 counts, payload, return).
//   D5 regroup    expert rank: pairs sorted by local expert (stable: source rank, token, j —
//                 global token order), x rows gathered by token row, gate rows copied:
//                 contiguous per-expert blocks for the grouped expert GEMMs.
//      ... the caller runs the experts on ExpertBatch, writing ExpertBatch::out ...
//   D6 return     expert rank: outputs back in received order; AllToAllV to the sources.
//   D7 combine    source rank: y_t = Σ_j w_tj · out(t, j); dropped pairs contribute 0.
// Backward mirrors it: D7' combine backward (dY per pair, dw), D6' AllToAllV of dY pairs to the
// expert ranks and regroup; the caller runs the experts backward; D5' per source the dX of each
// distinct token (summed over its pairs on this rank) and the dC of each pair; D4' AllToAllV
// back; D3' source: dx_t += Σ_p dX_p(t), dC scattered into the [N, K·g] gate-cache gradient.
//
// Two implementations of one interface (MakeExpertDispatcher picks by the ep group's size):
//   LocalExpertDispatcher (parallel/local_expert_dispatcher.h), an ep group of one: the layout
//     groups pairs by expert (ops::BuildExpertLayout), x and the gate rows are gathered straight
//     into the expert blocks, and nothing is copied twice or communicated.
//   AllToAllExpertDispatcher (parallel/all_to_all_dispatcher.h): the stages above, each a named
//     method. It also runs on a group of one (the tests compare it with the local one there).
//
// Gate rows: router MoE experts gate on x itself (gate_width 0: ExpertBatch::gate is
// ExpertBatch::x and nothing extra travels); AoE experts gate on their C_i = x·W_down^i (gate
// width r), handed over per SLOT: the gate cache is [N, K·g] and pair (t, j) reads columns
// j·g .. (j+1)·g of row t (the scorer gathers or recomputes the K selected slices, so the full
// C [N, n·r] need not be kept; models/aoe_scorer.h). Sent per pair, never recomputed here.
//
// Contract: one dispatcher per routed layer; Dispatch → (experts) → Combine and
// CombineBackward → (experts backward) → DispatchBackward, in that order, on every rank of the
// ep group in step (every call but the pure-local ones is collective over `ep`). Tensors handed
// out live in the arena passed to Dispatch and are valid until it is reset; the dispatcher keeps
// references between Dispatch and DispatchBackward. Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/arena.h"
#include "core/tensor.h"
#include "parallel/communicator.h"

namespace aoetron::parallel {

// What one layer's dispatch moved in the last micro-batch, seen from this rank. Byte counts are
// bytes this rank handed to OTHER ranks of the ep group (its own share is a local copy).
// Backward moves the mirror image of forward, so its byte counts are known at Dispatch.
struct DispatchStats {
  int64_t kept_pairs = 0;       // pairs this rank dispatched (all its pairs, unless dropped)
  int64_t dropped_pairs = 0;    // pairs over capacity on this rank (global rule, see layout)
  int64_t received_pairs = 0;   // pairs this rank's experts computed (its expert-side load)
  int64_t peer_pairs = 0;       // kept pairs sent to other ranks
  int64_t peer_token_rows = 0;  // x rows sent to other ranks: distinct (token, peer) pairs
  // Forward, source side: x rows (d per distinct (token, peer)) + gate rows (g per pair).
  int64_t forward_payload_bytes = 0;
  // Forward metadata: counts (2 × i64 per peer) + pair metadata (2 × i32 per pair, carried at
  // the head of each peer's payload and padded to whole payload rows).
  int64_t forward_metadata_bytes = 0;
  // Forward, expert side: output rows (d per received pair) returned to their sources.
  int64_t forward_return_bytes = 0;
  // Backward: dY rows out (d per sent pair) + dX (d per received distinct token) and dC (g per
  // received pair) back.
  int64_t backward_bytes = 0;
  // The analytic minimum of forward_payload_bytes for this layout, counted straight from the
  // routing: (distinct (token, peer rank) pairs × d + pairs for peers × g) × element bytes.
  int64_t minimum_payload_bytes = 0;
  // Wall time spent inside this layer's collectives (D2, D4, D6 / D6', D4').
  double forward_exchange_seconds = 0.0;
  double backward_exchange_seconds = 0.0;

  int64_t total_bytes() const {
    return forward_payload_bytes + forward_metadata_bytes + forward_return_bytes + backward_bytes;
  }
};

// The experts' view: rows grouped by local expert, offsets[e]..offsets[e+1] for expert e.
struct ExpertBatch {
  Tensor x;                      // [R, d] inputs
  Tensor gate;                   // [R, g] gate inputs; the same tensor as x when g = 0
  std::vector<int64_t> offsets;  // local experts + 1
  Tensor out;                    // [R, d] the experts write their outputs here
};

// The experts' gradients: d_out given, dx and dgate zeroed for the experts to accumulate into
// (dgate is dx itself when g = 0, as the experts expect when the gate input aliases x).
struct ExpertBatchGradients {
  Tensor d_out;  // [R, d]
  Tensor dx;     // [R, d]
  Tensor dgate;  // [R, g]
};

class ExpertDispatcher {
 public:
  virtual ~ExpertDispatcher() = default;

  int64_t num_experts() const { return num_experts_; }
  int64_t local_experts() const { return num_experts_ / ep_size_; }
  int64_t first_local_expert() const { return ep_rank_ * local_experts(); }

  // D1–D5. x: [N, d]; expert_index: i32 [N, K] (global expert ids); gate_cache: [N, K·g] by slot
  // (pair (t, j) at columns j·g .. (j+1)·g) when gate_width > 0, else undefined; keep_limit: empty
  // (dropless) or per expert (KeepLimits).
  ExpertBatch Dispatch(const Tensor& x, const Tensor& expert_index, const Tensor& gate_cache,
                       std::span<const int64_t> keep_limit, ActivationArena& arena);

  // D6–D7, after the experts filled the batch's `out`. gate_weights: [N, K] (the activations'
  // dtype, or f32 beside bf16); y: [N, d] overwritten.
  virtual void Combine(const Tensor& gate_weights, Tensor& y, ActivationArena& arena) = 0;

  // D7'–D6'. dy: [N, d]. Accumulates dL/dw into d_gate_weights [N, K] (dropped pairs get 0) and
  // returns the experts' d_out with zeroed dx/dgate to accumulate into.
  virtual ExpertBatchGradients CombineBackward(const Tensor& dy, const Tensor& gate_weights,
                                               Tensor& d_gate_weights, ActivationArena& arena) = 0;

  // D5'–D3', after the experts' backward. Accumulates into dx [N, d] and, when gate_width > 0,
  // into d_gate_cache [N, K·g] (the gradient of the gate cache, by slot as in Dispatch).
  virtual void DispatchBackward(const ExpertBatchGradients& grads, Tensor& dx, Tensor& d_gate_cache,
                                ActivationArena& arena) = 0;

  const DispatchStats& stats() const { return stats_; }

 protected:
  // num_experts: n over the whole ep group (ep_size must divide it); d_model: x's width;
  // gate_width: 0 (router: experts gate on x) or r (AoE).
  ExpertDispatcher(int ep_rank, int ep_size, int64_t num_experts, int64_t d_model,
                   int64_t gate_width);
  // D1–D5 of the implementation, with x_, expert_index_, gate_cache_ saved and stats_ reset;
  // fills batch_ and stats_.
  virtual void DispatchStages(std::span<const int64_t> keep_limit, ActivationArena& arena) = 0;

  const int ep_rank_, ep_size_;
  const int64_t num_experts_, d_model_, gate_width_;
  // Saved by Dispatch for the calls after it.
  Tensor x_, expert_index_, gate_cache_;
  ExpertBatch batch_;
  DispatchStats stats_;
};

// The dispatcher of one routed layer: local for an ep group of one, all-to-all otherwise. ep: the
// expert-parallel group's device communicator (payloads), ep_host its host one (the counts, D2);
// both outlive the dispatcher.
std::unique_ptr<ExpertDispatcher> MakeExpertDispatcher(Communicator& ep, Communicator& ep_host,
                                                       int64_t num_experts, int64_t d_model,
                                                       int64_t gate_width);

}  // namespace aoetron::parallel
