// AoeScorer: Autonomy-of-Experts self-scoring (AOE.md, paper Algorithm 2).
//
//   C   = x Ŵ_down          Ŵ_down = [W_down^1 … W_down^n]: [d, n·r] — ONE GEMM for all experts
//   p_i = ‖C_i‖₂            C_i = C[:, i·r : (i+1)·r]
// The selected experts gate on their own C_i, taken once per (token, expert) pair from the C
// computed here (gate_cache()) and shipped with the pair — never recomputed. Unselected experts
// stop after this product.
//
// Gradient reaching Ŵ_down (paths 1–3 of AOE.md): dscores arrive through the gate weights and the
// aux loss's P (all experts); the selected pairs' dC_i arrive from their experts' W_up. Both land
// in one dC [N, n·r], then dŴ_down += xᵀ dC and dx += dC Ŵ_downᵀ.
#pragma once

#include <string>

#include "models/expert_scorer.h"
#include "models/parameter.h"

namespace aoetron {

class AoeScorer final : public ExpertScorer {
 public:
  // Registers `prefix`.w_down [d, n·r] (replicated: every rank scores its own tokens).
  AoeScorer(ParameterSet* params, const std::string& prefix, int64_t d_model, int64_t n_experts,
            int64_t d_low, double init_std);

  Tensor Forward(const Tensor& x, ActivationArena& arena) override;
  int64_t gate_input_width() const override { return d_low_; }
  int64_t gate_cache_width() const override { return d_low_; }
  Tensor gate_cache() const override { return c_; }
  // dC = d_gate_cache + dp_i · C_i/‖C_i‖ (per expert slice), dŴ_down += xᵀ dC, dx += dC Ŵ_downᵀ.
  void Backward(const Tensor& dscores, Tensor& d_gate_cache, Tensor& dx,
                ActivationArena& arena) override;

 private:
  ParameterSet* params_;
  int64_t d_model_, n_experts_, d_low_;
  int w_down_;
  Tensor x_, c_, norms_;  // saved by Forward
};

}  // namespace aoetron
