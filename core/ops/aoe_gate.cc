#include "core/ops/aoe_gate.h"

#include "core/ops/cuda/kernels.h"
#include "core/ops/f32_staging.h"
#include "core/ops/grouped_l2_norm.h"
#include "core/ops/op_checks.h"
#include "core/ops/softmax.h"
#include "core/ops/topk.h"

namespace aoetron::ops {

using namespace internal;  // NOLINT: the op_checks helpers

void AoeGate(const Tensor& c, int64_t group_width, int64_t k, Tensor& norms, Tensor& top_values,
             Tensor& top_index, Tensor& gate_weights) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "AoeGate";
  CheckOperands(kOp, {{"c", &c},
                      {"norms", &norms},
                      {"top_values", &top_values},
                      {"top_index", &top_index},
                      {"gate_weights", &gate_weights}});
  CheckFloat(kOp, "c", c);
  CheckRank(kOp, "c", c, 2);
  AOETRON_CHECK(group_width >= 1 && c.dim(1) % group_width == 0)
      << kOp << ": group_width " << group_width << " must divide the columns of c "
      << c.DebugString();
  const int64_t n = c.dim(0), groups = c.dim(1) / group_width;
  AOETRON_CHECK(1 <= k && k <= groups)
      << kOp << ": k = " << k << " must lie in [1, " << groups << "] for c " << c.DebugString();
  CheckGradientDType(kOp, "norms", norms, c.dtype());
  CheckShapeEq(kOp, "norms", norms, {n, groups});
  CheckDType(kOp, "top_values", top_values, norms.dtype());
  CheckShapeEq(kOp, "top_values", top_values, {n, k});
  CheckDType(kOp, "top_index", top_index, DType::kI32);
  CheckShapeEq(kOp, "top_index", top_index, {n, k});
  CheckDType(kOp, "gate_weights", gate_weights, norms.dtype());
  CheckShapeEq(kOp, "gate_weights", gate_weights, {n, k});
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(c) && norms.dtype() == c.dtype()) {
    cuda::AoeGate(CudaOrdinal(c), c.dtype(), c.raw_data(), n, groups, group_width, k,
                  norms.raw_data(), top_values.raw_data(), top_index.data<int32_t>(),
                  gate_weights.raw_data());
    return;
  }
#endif
  // The composition (each op stages bf16 itself).
  GroupedL2Norm(c, group_width, norms);
  TopK(norms, k, top_values, top_index);
  RowSoftmaxForward(top_values, gate_weights);
}

}  // namespace aoetron::ops
