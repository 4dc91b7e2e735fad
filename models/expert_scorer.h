// ExpertScorer: the only part in which router MoE and AoE differ. It turns a token's hidden
// state into one score per expert, and tells the experts what their gate multiplies.
//
//   router MoE:  scores = x W_r                  experts gate on x itself  (G = x, width d)
//   AoE:         C = x Ŵ_down, scores = ‖C_i‖₂   experts gate on their own C_i (width r)
//
// Everything else — top-K, gate weights, aux loss, dispatch, grouped experts, combine — is
// RoutedFeedForward and parallel::ExpertDispatcher, shared by both. The scorer's parameters are
// replicated: every rank scores its own tokens, with no communication.
//
// Call order per micro-batch: Forward → SelectedGateCache (after top-K) → … → Backward.
#pragma once

#include <cstdint>

#include "core/arena.h"
#include "core/tensor.h"

namespace aoetron {

class ExpertScorer {
 public:
  virtual ~ExpertScorer() = default;

  // x: [N, d] → scores [N, n]. Keeps what Backward needs.
  virtual Tensor Forward(const Tensor& x, ActivationArena& arena) = 0;

  // Width of each expert's gate input: d for the router (the gate multiplies x), r for AoE.
  virtual int64_t gate_input_width() const = 0;
  // Width of one pair's slice of the gate cache: 0 for the router (no cache: experts gate on x),
  // r for AoE.
  virtual int64_t gate_cache_width() const = 0;
  // AoE: the gate inputs of each token's K selected experts BY SLOT, [N, K·r]: pair (t, j) at
  // columns j·r .. (j+1)·r is C_e = x_t·W_down^e for e = top_index[t, j] (i32 [N, K]). Shipped
  // with the pairs to their experts (parallel/expert_dispatcher.h). Called once per Forward,
  // after top-K; the scorer keeps top_index for Backward. In the arena; undefined for the router.
  virtual Tensor SelectedGateCache(const Tensor& top_index, ActivationArena& arena) {
    return Tensor();
  }

  // dscores: [N, n]; d_gate_cache: [N, K·r] by slot as SelectedGateCache, the gradient reaching
  // the selected experts' gate inputs (undefined for the router). Accumulates into dx [N, d] and
  // the scorer's parameter gradients. May modify d_gate_cache (it becomes the scorer's scratch).
  virtual void Backward(const Tensor& dscores, Tensor& d_gate_cache, Tensor& dx,
                        ActivationArena& arena) = 0;
};

}  // namespace aoetron
