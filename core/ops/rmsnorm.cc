#include "core/ops/rmsnorm.h"

#include "core/ops/cpu/kernels.h"
#include "core/ops/cuda/kernels.h"
#include "core/ops/f32_staging.h"
#include "core/ops/op_checks.h"

namespace aoetron::ops {
namespace {

using namespace internal;  // NOLINT: the op_checks helpers

// x: [N, d] (float), and every other operand of the same dtype with the shape given.
void CheckRmsNormOperands(const char* op, const Tensor& x, const Tensor& weight,
                          std::initializer_list<Operand> rows, const Tensor& rstd) {
  CheckFloat(op, "x", x);
  CheckRank(op, "x", x, 2);
  const int64_t n = x.dim(0), d = x.dim(1);
  AOETRON_CHECK(d >= 1) << op << ": x needs at least one column, got " << x.DebugString();
  CheckDType(op, "weight", weight, x.dtype());
  CheckShapeEq(op, "weight", weight, {d});
  CheckDType(op, "rstd", rstd, AccumulationDType(x.dtype()));
  CheckShapeEq(op, "rstd", rstd, {n});
  for (const Operand& row : rows) {
    CheckDType(op, row.name, *row.tensor, x.dtype());
    CheckShapeEq(op, row.name, *row.tensor, {n, d});
  }
}

}  // namespace

void RmsNormForward(const Tensor& x, const Tensor& weight, float eps, Tensor& y, Tensor& rstd) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "RmsNormForward";
  CheckOperands(kOp, {{"x", &x}, {"weight", &weight}, {"y", &y}, {"rstd", &rstd}});
  CheckRmsNormOperands(kOp, x, weight, {{"y", &y}}, rstd);
  AOETRON_CHECK(eps >= 0.0f) << kOp << ": eps must be non-negative, got " << eps;
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(x)) {
    cuda::RmsNormForward(CudaOrdinal(x), x.dtype(), x.raw_data(), weight.raw_data(), x.dim(0),
                         x.dim(1), eps, y.raw_data(), rstd.data<float>());
    return;
  }
#endif
  if (x.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    RmsNormForward(f32.In(x), f32.In(weight), eps, f32.Out(y), f32.Out(rstd));
    return;
  }
  DispatchFloat(x.dtype(), [&]<typename T>() {
    cpu::RmsNormForward<T>(x.data<T>(), weight.data<T>(), x.dim(0), x.dim(1), static_cast<T>(eps),
                           y.data<T>(), rstd.data<T>());
  });
}

void RmsNormBackward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                     Tensor& dx, Tensor& dweight) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "RmsNormBackward";
  CheckOperands(kOp, {{"dy", &dy},
                      {"x", &x},
                      {"weight", &weight},
                      {"rstd", &rstd},
                      {"dx", &dx},
                      {"dweight", &dweight}});
  CheckRmsNormOperands(kOp, x, weight, {{"dy", &dy}, {"dx", &dx}}, rstd);
  CheckGradientDType(kOp, "dweight", dweight, x.dtype());
  CheckShapeEq(kOp, "dweight", dweight, {x.dim(1)});
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(x) && dweight.dtype() == x.dtype()) {
    cuda::RmsNormBackward(CudaOrdinal(x), x.dtype(), dy.raw_data(), x.raw_data(), weight.raw_data(),
                          rstd.data<float>(), x.dim(0), x.dim(1), dx.raw_data(),
                          dweight.raw_data());
    return;
  }
#endif
  if (x.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    RmsNormBackward(f32.In(dy), f32.In(x), f32.In(weight), rstd, f32.InOut(dx), f32.InOut(dweight));
    return;
  }
  DispatchFloat(x.dtype(), [&]<typename T>() {
    cpu::RmsNormBackward<T>(dy.data<T>(), x.data<T>(), weight.data<T>(), rstd.data<T>(), x.dim(0),
                            x.dim(1), dx.data<T>(), dweight.data<T>());
  });
}

}  // namespace aoetron::ops
