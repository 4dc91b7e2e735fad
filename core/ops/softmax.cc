#include "core/ops/softmax.h"

#include "core/ops/cpu/kernels.h"
#include "core/ops/cuda/kernels.h"
#include "core/ops/f32_staging.h"
#include "core/ops/op_checks.h"

namespace aoetron::ops {
namespace {

using namespace internal;  // NOLINT: the op_checks helpers

// The first operand: [N, m] float, m ≥ 1; the others: the same dtype and shape.
void CheckSoftmaxOperands(const char* op, Operand first, std::initializer_list<Operand> rest) {
  CheckFloat(op, first.name, *first.tensor);
  CheckRank(op, first.name, *first.tensor, 2);
  AOETRON_CHECK(first.tensor->dim(1) >= 1)
      << op << ": " << first.name << " needs at least one column, got "
      << first.tensor->DebugString();
  for (const Operand& operand : rest) {
    CheckDType(op, operand.name, *operand.tensor, first.tensor->dtype());
    CheckShapeEq(op, operand.name, *operand.tensor, first.tensor->shape());
  }
}

}  // namespace

void RowSoftmaxForward(const Tensor& x, Tensor& y) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "RowSoftmaxForward";
  CheckOperands(kOp, {{"x", &x}, {"y", &y}});
  CheckSoftmaxOperands(kOp, {"x", &x}, {{"y", &y}});
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(x)) {
    cuda::RowSoftmaxForward(CudaOrdinal(x), x.dtype(), x.raw_data(), x.dim(0), x.dim(1),
                            y.raw_data());
    return;
  }
#endif
  if (x.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    RowSoftmaxForward(f32.In(x), f32.Out(y));
    return;
  }
  DispatchFloat(x.dtype(), [&]<typename T>() {
    cpu::RowSoftmaxForward<T>(x.data<T>(), x.dim(0), x.dim(1), y.data<T>());
  });
}

void RowSoftmaxBackward(const Tensor& dy, const Tensor& y, Tensor& dx) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "RowSoftmaxBackward";
  CheckOperands(kOp, {{"dy", &dy}, {"y", &y}, {"dx", &dx}});
  CheckSoftmaxOperands(kOp, {"y", &y}, {{"dy", &dy}, {"dx", &dx}});
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(y)) {
    cuda::RowSoftmaxBackward(CudaOrdinal(y), y.dtype(), dy.raw_data(), y.raw_data(), y.dim(0),
                             y.dim(1), dx.raw_data());
    return;
  }
#endif
  if (y.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    RowSoftmaxBackward(f32.In(dy), f32.In(y), f32.InOut(dx));
    return;
  }
  DispatchFloat(y.dtype(), [&]<typename T>() {
    cpu::RowSoftmaxBackward<T>(dy.data<T>(), y.data<T>(), y.dim(0), y.dim(1), dx.data<T>());
  });
}

}  // namespace aoetron::ops
