// AoeScorer: Autonomy-of-Experts self-scoring (AOE.md, paper Algorithm 2).
//
//   C   = x Ŵ_down          Ŵ_down = [W_down^1 … W_down^n]: [d, n·r]
//   p_i = ‖C_i‖₂            C_i = C[:, i·r : (i+1)·r]
// The selected experts gate on their own C_i, handed to the dispatcher by slot
// (SelectedGateCache: [N, K·r]) and shipped with the pair. Unselected experts stop after the
// product.
//
// Gradient reaching Ŵ_down (paths 1–3 of AOE.md): dscores arrive through the gate weights and the
// aux loss's P (all experts); the selected pairs' dC_i arrive from their experts' W_up. Both land
// in dC, then dŴ_down += xᵀ dC and dx += dC Ŵ_downᵀ.
//
// Two memory modes (ModelConfig::aoe_memory, docs/models.md):
//   keep_all   Forward computes C [N, n·r] in ONE GEMM and keeps it; SelectedGateCache gathers
//              the K slices; Backward builds dC [N, n·r] in one piece. Activations kept:
//              N·n·r + N·n (norms) + N·K·r.
//   blockwise  Forward runs the GEMM a block of B experts at a time into a [N, B·r] scratch and
//              keeps only the norms; SelectedGateCache recomputes the K selected C_i per pair
//              (ops::ExpertSliceProduct, 2·N·K·d·r FLOPs). Backward, per block: C_b = x·W_b
//              again, dC_b = (dp_i · C_i/‖C_i‖) + the selected pairs' dC_i, dW_b = xᵀ dC_b,
//              dx += dC_b W_bᵀ. Kept: N·n (norms) + N·K·r; scratch: one block (≈ 2·N·B·r +
//              2·d·B·r). Extra work: one N·d·n·r GEMM in backward plus the per-pair product.
// The ops::Gemm operands are dense, so a block of Ŵ_down's columns is copied into a [d, B·r]
// scratch (and its gradient added back): d·n·r element moves per pass, 1/N of the GEMM's work.
// Both modes give the same results up to f32 summation order (exactly the same in f64 up to the
// order of dx's sum over blocks).
#pragma once

#include <string>

#include "models/expert_scorer.h"
#include "models/model_config.h"
#include "models/parameter.h"

namespace aoetron {

class AoeScorer final : public ExpertScorer {
 public:
  // Registers `prefix`.w_down [d, n·r] (replicated: every rank scores its own tokens).
  // score_block: experts per block in blockwise mode (0 = automatic; see AoeScoreBlock).
  AoeScorer(ParameterSet* params, const std::string& prefix, int64_t d_model, int64_t n_experts,
            int64_t d_low, double init_std, AoeMemory memory = AoeMemory::kKeepAll,
            int64_t score_block = 0);

  Tensor Forward(const Tensor& x, ActivationArena& arena) override;
  int64_t gate_input_width() const override { return d_low_; }
  int64_t gate_cache_width() const override { return d_low_; }
  Tensor SelectedGateCache(const Tensor& top_index, ActivationArena& arena) override;
  void Backward(const Tensor& dscores, Tensor& d_gate_cache, Tensor& dx,
                ActivationArena& arena) override;

  AoeMemory memory() const { return memory_; }
  int64_t score_block() const { return block_; }  // experts per block (blockwise)

 private:
  void ForwardBlockwise(ActivationArena& arena);
  void BackwardKeepAll(const Tensor& dscores, const Tensor& d_gate_cache, Tensor& dx,
                       ActivationArena& arena);
  void BackwardBlockwise(const Tensor& dscores, const Tensor& d_gate_cache, Tensor& dx,
                         ActivationArena& arena);

  ParameterSet* params_;
  int64_t d_model_, n_experts_, d_low_;
  AoeMemory memory_;
  int64_t block_;
  int w_down_;
  // Saved by Forward (c_: keep_all only) and SelectedGateCache (top_index_).
  Tensor x_, c_, norms_, top_index_;
};

}  // namespace aoetron
