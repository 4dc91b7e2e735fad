#include "core/ops/grouped_l2_norm.h"

#include "core/ops/cpu/kernels.h"
#include "core/ops/cuda/kernels.h"
#include "core/ops/f32_staging.h"
#include "core/ops/op_checks.h"

namespace aoetron::ops {
namespace {

using namespace internal;  // NOLINT: the op_checks helpers

// c: [N, G·w] float; returns G.
int64_t CheckGroupedC(const char* op, const Tensor& c, int64_t group_width) {
  CheckFloat(op, "c", c);
  CheckRank(op, "c", c, 2);
  AOETRON_CHECK(group_width >= 1 && c.dim(1) % group_width == 0)
      << op << ": group_width " << group_width << " must divide the columns of c "
      << c.DebugString();
  return c.dim(1) / group_width;
}

}  // namespace

void GroupedL2Norm(const Tensor& c, int64_t group_width, Tensor& norms) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "GroupedL2Norm";
  CheckOperands(kOp, {{"c", &c}, {"norms", &norms}});
  const int64_t groups = CheckGroupedC(kOp, c, group_width);
  CheckGradientDType(kOp, "norms", norms, c.dtype());
  CheckShapeEq(kOp, "norms", norms, {c.dim(0), groups});
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(c) && norms.dtype() == c.dtype()) {
    cuda::GroupedL2Norm(CudaOrdinal(c), c.dtype(), c.raw_data(), c.dim(0), groups, group_width,
                        norms.raw_data());
    return;
  }
#endif
  if (c.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    GroupedL2Norm(f32.In(c), group_width, f32.Out(norms));
    return;
  }
  DispatchFloat(c.dtype(), [&]<typename T>() {
    cpu::GroupedL2Norm<T>(c.data<T>(), c.dim(0), groups, group_width, norms.data<T>());
  });
}

void GroupedL2NormBackward(const Tensor& dnorms, const Tensor& c, const Tensor& norms,
                           int64_t group_width, Tensor& dc) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "GroupedL2NormBackward";
  CheckOperands(kOp, {{"dnorms", &dnorms}, {"c", &c}, {"norms", &norms}, {"dc", &dc}});
  const int64_t groups = CheckGroupedC(kOp, c, group_width);
  CheckGradientDType(kOp, "norms", norms, c.dtype());
  CheckShapeEq(kOp, "norms", norms, {c.dim(0), groups});
  CheckDType(kOp, "dnorms", dnorms, norms.dtype());
  CheckShapeEq(kOp, "dnorms", dnorms, {c.dim(0), groups});
  CheckDType(kOp, "dc", dc, c.dtype());
  CheckShapeEq(kOp, "dc", dc, c.shape());
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(c) && norms.dtype() == c.dtype()) {
    cuda::GroupedL2NormBackward(CudaOrdinal(c), c.dtype(), dnorms.raw_data(), c.raw_data(),
                                norms.raw_data(), c.dim(0), groups, group_width, dc.raw_data());
    return;
  }
#endif
  if (c.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    GroupedL2NormBackward(f32.In(dnorms), f32.In(c), f32.In(norms), group_width, f32.InOut(dc));
    return;
  }
  DispatchFloat(c.dtype(), [&]<typename T>() {
    cpu::GroupedL2NormBackward<T>(dnorms.data<T>(), c.data<T>(), norms.data<T>(), c.dim(0), groups,
                                  group_width, dc.data<T>());
  });
}

}  // namespace aoetron::ops
