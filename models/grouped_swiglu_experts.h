// GroupedSwiGluExperts: n SwiGLU experts applied to rows already grouped by expert, one GEMM per
// expert block (Megatron's grouped GEMM; no per-token loops).
//
// Expert e computes, on its block of rows X_e [m_e, d] and gate input G_e [m_e, g]:
//   A_e = G_e · W_gate^e        [m_e, F]   (router MoE / dense: G = X, W_gate = W_g  [d, F])
//   U_e = X_e · W_p^e           [m_e, F]   (AoE: G = the cached C_e slice, W_gate = W_up [r, F])
//   H_e = SiLU(A_e) ⊙ U_e       [m_e, F]
//   Y_e = H_e · W_o^e           [m_e, d]
// Backward, with dY_e given:
//   dH = dY W_oᵀ,  dW_o += Hᵀ dY,  (dA, dU) from SwiGLU,
//   dW_gate += Gᵀ dA,  dG += dA W_gateᵀ,  dW_p += Xᵀ dU,  dX += dU W_pᵀ
// A dense FFN is the same thing with one expert and every row in its block.
//
// Tensor parallelism (Megatron's column- then row-parallel MLP, parallel/tensor_parallel.h):
// every expert's width F is split over the tp group. W_gate and W_p are split by columns
// (dim 1) and W_o by rows (dim 0), so rank r computes the F/tp columns [r·F/tp, (r+1)·F/tp) of
// A, U and H — SiLU(A) ⊙ U is elementwise, so no collective is needed between the two
// products — and a partial Y_e = H_e[:, shard] · W_o^e[shard, :]. The layer is self-contained:
//   Forward  sums the partial Y over tp (one all-reduce of [M, d]): y is the FULL output on
//            every tp rank.
//   Backward sums the new dX and dG contributions over tp (one all-reduce of M·(d + g) values,
//            M·d when G is X) before accumulating them: callers see an ordinary layer.
// X and G must be identical on every tp rank (no sequence parallelism), and so must the row
// blocks (offsets). With tp = 1 there is no collective and the arithmetic is unchanged.
//
// Saved for backward: A, U and H ([M, F/tp] each) plus references to X and G, which the caller
// keeps alive until Backward.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/tensor.h"
#include "models/parameter.h"
#include "parallel/communicator.h"

namespace aoetron {

class GroupedSwiGluExperts {
 public:
  // Registers, for each prefix p in `expert_prefixes`, parameters p + "." + gate_name
  // [gate_in, width], p + ".w_p" [d, width] and p + ".w_o" [width, d] (global shapes).
  // `shardings[e]` gives expert e's ownership (Sharding::expert, kept as given); this class
  // sets each weight's tensor_parallel_dim itself (1, 1, 0). `tensor_parallel` is this rank's
  // tp group, the same one `params` was cut for; it must outlive the layer, and `width` must be
  // divisible by its size. The output projection is initialised with `output_std`.
  GroupedSwiGluExperts(ParameterSet* params, parallel::Communicator& tensor_parallel,
                       const std::vector<std::string>& expert_prefixes,
                       const std::string& gate_name, int64_t d_model, int64_t gate_in,
                       int64_t width, double init_std, double output_std,
                       const std::vector<Sharding>& shardings);

  // x: [M, d], gate_in: [M, g] (may be the same tensor as x), offsets: n + 1 block boundaries.
  // y: [M, d] overwritten with the full output (summed over tp). Collective over tp.
  void Forward(const Tensor& x, const Tensor& gate_in, const std::vector<int64_t>& offsets,
               Tensor& y, ActivationArena& arena);

  // dy: [M, d], the same on every tp rank. Accumulates into dx [M, d] and dgate_in [M, g] (which
  // may be the very same tensor as dx when gate_in was x) the full gradients, and into this
  // rank's shards of the experts' parameter gradients. Collective over tp.
  void Backward(const Tensor& dy, Tensor& dx, Tensor& dgate_in, ActivationArena& arena);

  int64_t num_experts() const { return static_cast<int64_t>(w_gate_.size()); }
  int64_t width() const { return width_; }              // F, the global width
  int64_t local_width() const { return local_width_; }  // F / tp, what this rank computes

 private:
  ParameterSet* params_;
  parallel::Communicator* tensor_parallel_;
  int64_t d_model_, gate_in_, width_, local_width_;
  std::vector<int> w_gate_, w_p_, w_o_;  // parameter indices per expert
  // Saved by Forward for Backward.
  Tensor x_, gate_input_, a_, u_, h_;
  std::vector<int64_t> offsets_;
};

}  // namespace aoetron
