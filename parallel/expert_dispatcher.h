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
// back; D3' source: dx_t += Σ_p dX_p(t), dC scattered into the [N, n·g] gate-cache gradient.
//
// With an ep group of one, the dispatcher is the single-process path: the layout groups pairs
// by expert (ops::BuildExpertLayout), x and the gate rows are gathered straight into the expert
// blocks, and nothing is copied twice or communicated — as fast as before expert parallelism.
//
// Gate rows: router MoE experts gate on x itself (gate_width 0: ExpertBatch::gate is
// ExpertBatch::x and nothing extra travels); AoE experts gate on the cached C_i, the r columns
// of expert i in C = x·Ŵ_down [N, n·r] (gate_width r), sent per pair and never recomputed.
//
// Contract: one dispatcher per routed layer; Dispatch → (experts) → Combine and
// CombineBackward → (experts backward) → DispatchBackward, in that order, on every rank of the
// ep group in step (every call but the pure-local ones is collective over `ep`). Tensors handed
// out live in the arena passed to Dispatch and are valid until it is reset; the dispatcher keeps
// references between Dispatch and DispatchBackward. Not thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/arena.h"
#include "core/ops/expert_permute.h"
#include "core/tensor.h"
#include "parallel/communicator.h"
#include "parallel/dispatch_layout.h"

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
  enum class Mode {
    kAuto,      // local when the ep group has one rank, all-to-all otherwise
    kAllToAll,  // always the all-to-all path (tests run it on a group of one)
  };

  // ep: the expert-parallel group (must outlive the dispatcher); num_experts: n over the whole
  // group (ep.size() must divide it); d_model: x's width; gate_width: 0 (router: experts gate
  // on x) or r (AoE). element_bytes are counted from x's dtype at each Dispatch.
  ExpertDispatcher(Communicator& ep, int64_t num_experts, int64_t d_model, int64_t gate_width,
                   Mode mode = Mode::kAuto);

  bool local() const { return local_; }
  int64_t local_experts() const { return num_experts_ / ep_->size(); }
  int64_t first_local_expert() const { return ep_->rank() * local_experts(); }

  // D1–D5. x: [N, d]; expert_index: i32 [N, K] (global expert ids); gate_cache: [N, n·g] when
  // gate_width > 0, else undefined; keep_limit: empty (dropless) or per expert (KeepLimits).
  ExpertBatch Dispatch(const Tensor& x, const Tensor& expert_index, const Tensor& gate_cache,
                       std::span<const int64_t> keep_limit, ActivationArena& arena);

  // D6–D7, after the experts filled the batch's `out`. gate_weights: [N, K]; y: [N, d]
  // overwritten.
  void Combine(const Tensor& gate_weights, Tensor& y, ActivationArena& arena);

  // D7'–D6'. dy: [N, d]. Accumulates dL/dw into d_gate_weights [N, K] (dropped pairs get 0) and
  // returns the experts' d_out with zeroed dx/dgate to accumulate into.
  ExpertBatchGradients CombineBackward(const Tensor& dy, const Tensor& gate_weights,
                                       Tensor& d_gate_weights, ActivationArena& arena);

  // D5'–D3', after the experts' backward. Accumulates into dx [N, d] and, when gate_width > 0,
  // into d_gate_cache [N, n·g] (the gradient of the cached C).
  void DispatchBackward(const ExpertBatchGradients& grads, Tensor& dx, Tensor& d_gate_cache,
                        ActivationArena& arena);

  const DispatchStats& stats() const { return stats_; }
  // The layout of the last Dispatch on the all-to-all path (tests, diagnostics).
  const DispatchLayout& layout() const { return layout_; }

 private:
  void DispatchLocal(const Tensor& x, const Tensor& expert_index, const Tensor& gate_cache,
                     std::span<const int64_t> keep_limit, ActivationArena& arena);
  void DispatchAllToAll(const Tensor& x, const Tensor& expert_index, const Tensor& gate_cache,
                        std::span<const int64_t> keep_limit, ActivationArena& arena);
  void CountMinimumPayload(const Tensor& host_index, int64_t element_bytes);
  // The [rows, width] block of a payload ([units, unit_]) that starts at payload row first_unit.
  Tensor PeerBlock(const Tensor& payload, int64_t first_unit, int64_t rows, int64_t width) const;
  // The metadata rows of `pairs` pairs at payload row first_unit, seen as i32 words (padding
  // included: 2·pairs words of metadata, then zeros).
  Tensor MetadataWords(const Tensor& payload, int64_t first_unit, int64_t pairs,
                       int64_t element_bytes) const;
  // Payload elements per peer: x rows then gate rows (source view: send; expert view: recv).
  int64_t PayloadElements(int64_t tokens, int64_t pairs) const {
    return tokens * d_model_ + pairs * gate_width_;
  }
  // Payload rows that hold `pairs` metadata entries (2 × i32 each) at the head of a peer's
  // forward payload: ceil(8 · pairs / (unit · element_bytes)).
  int64_t MetadataUnits(int64_t pairs, int64_t element_bytes) const {
    const int64_t row_bytes = unit_ * element_bytes;
    return (pairs * 2 * static_cast<int64_t>(sizeof(int32_t)) + row_bytes - 1) / row_bytes;
  }

  Communicator* ep_;
  int64_t num_experts_, d_model_, gate_width_;
  bool local_;
  int64_t unit_;  // payload row width: gcd(d, g), so x rows and gate rows are whole rows

  // Saved by Dispatch for the calls after it.
  Tensor x_, expert_index_, gate_cache_;
  ExpertBatch batch_;
  DispatchStats stats_;
  // Local path: pairs grouped by expert; rows past offsets.back() are dropped pairs.
  ops::ExpertLayout local_layout_;
  Tensor x_grouped_full_, out_grouped_full_;     // [N·K, d]
  Tensor dx_grouped_full_, dgate_grouped_full_;  // [N·K, d], [N·K, g]
  // All-to-all path.
  DispatchLayout layout_;
  std::vector<int64_t> recv_tokens_, recv_pairs_;              // per source rank
  std::vector<int64_t> recv_token_offset_, recv_pair_offset_;  // prefix sums, size ep + 1
  std::vector<int64_t> send_units_, recv_units_;               // payload rows per peer
  std::vector<int64_t> send_unit_offset_, recv_unit_offset_;
  std::vector<int32_t> recv_metadata_;     // [received pairs, 2]
  std::vector<int32_t> grouped_row_;       // received pair q → its row in the expert blocks
  std::vector<int64_t> token_first_pair_;  // received token → its first received pair (CSR)
  Tensor returned_;                        // [N·K, d] outputs in slot order; dropped rows 0
  // The layout's index vectors on the device (arena tensors, valid until the next Dispatch).
  Tensor sent_token_;               // i32 [Σ send_tokens]: layout_.sent_token
  Tensor gate_cache_row_;           // i32 [kept]: t·n + e of each kept pair (AoE only)
  Tensor pair_slot_;                // i32 [N, K]: layout_.pair_slot
  Tensor grouped_row_device_;       // i32 [received]: grouped_row_
  Tensor token_first_pair_device_;  // i64 [received tokens + 1]: token_first_pair_
};

}  // namespace aoetron::parallel
