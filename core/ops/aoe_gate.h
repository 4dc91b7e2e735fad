// AoE's expert selection in one op: the expert scores (L2 norms of each expert's slice of
// C = x Ŵ_down), the top-K experts per token, and their gate weights.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace aoetron::ops {

// c: [N, G · group_width], k in [1, G]; outputs norms: [N, G], top_values: [N, k] (dtype of c),
// top_index: i32 [N, k], gate_weights: [N, k] (dtype of c). Exactly the composition
//   GroupedL2Norm(c, group_width, norms);
//   TopK(norms, k, top_values, top_index);       // ties: the lower expert index wins
//   RowSoftmaxForward(top_values, gate_weights);
// (same selection, same bits for the norms and indices). On the CPU it is that composition; on
// CUDA one kernel reads each row of c once and keeps the norms on chip for the selection. The
// backward is the composition's: RowSoftmaxBackward, TopKBackward, GroupedL2NormBackward.
void AoeGate(const Tensor& c, int64_t group_width, int64_t k, Tensor& norms, Tensor& top_values,
             Tensor& top_index, Tensor& gate_weights);

}  // namespace aoetron::ops
