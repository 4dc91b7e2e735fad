// ExpertScorer: the only part in which router MoE and AoE differ. It turns a token's hidden
// state into one score per expert, and tells the experts what their gate multiplies.
//
//   router MoE:  scores = x W_r                  experts gate on x itself  (G = x, width d)
//   AoE:         C = x Ŵ_down, scores = ‖C_i‖₂   experts gate on their cached C_i (width r)
//
// Everything else — top-K, gate weights, layout, permutation, grouped experts, combine, aux loss
// — is RoutedFeedForward, shared by both.
#pragma once

#include <cstdint>

#include "core/arena.h"
#include "core/ops/expert_permute.h"
#include "core/tensor.h"

namespace aoetron {

class ExpertScorer {
 public:
  virtual ~ExpertScorer() = default;

  // x: [N, d] → scores [N, n]. Keeps what Backward needs.
  virtual Tensor Forward(const Tensor& x, ActivationArena& arena) = 0;

  // True when the experts gate on x (the gate input is x_perm and its gradient flows into
  // dx_perm); false when they gate on a separate input that ExpertGateInput builds.
  virtual bool gates_on_x() const = 0;
  // Width of each expert's gate input: d for the router, r for AoE.
  virtual int64_t gate_input_width() const = 0;

  // The grouped [M, gate_input_width] gate input for the experts; only when !gates_on_x().
  virtual Tensor ExpertGateInput(const Tensor& expert_index, const ops::ExpertLayout& layout,
                                 ActivationArena& arena) {
    return Tensor();
  }

  // dscores: [N, n]; dgate_input: [M, gate_input_width] (undefined when gates_on_x()).
  // Accumulates into dx [N, d] and the scorer's parameter gradients.
  virtual void Backward(const Tensor& dscores, const Tensor& dgate_input,
                        const Tensor& expert_index, const ops::ExpertLayout& layout, Tensor& dx,
                        ActivationArena& arena) = 0;
};

}  // namespace aoetron
