#include "core/ops/attention.h"

#include "core/ops/cpu/kernels.h"
#include "core/ops/cuda/kernels.h"
#include "core/ops/f32_staging.h"
#include "core/ops/op_checks.h"

namespace aoetron::ops {
namespace {

using namespace internal;  // NOLINT: the op_checks helpers

// qkv: [B, T, 3, H, hd] float with T, hd ≥ 1. The other operands' shapes derive from it.
void CheckQkv(const char* op, const char* name, const Tensor& qkv) {
  CheckFloat(op, name, qkv);
  CheckRank(op, name, qkv, 5);
  AOETRON_CHECK(qkv.dim(2) == 3 && qkv.dim(1) >= 1 && qkv.dim(4) >= 1)
      << op << ": " << name << " must be [B, T, 3, H, hd] with T, hd ≥ 1, got "
      << qkv.DebugString();
}

Shape OutShape(const Tensor& qkv) { return {qkv.dim(0), qkv.dim(1), qkv.dim(3), qkv.dim(4)}; }
Shape LseShape(const Tensor& qkv) { return {qkv.dim(0), qkv.dim(3), qkv.dim(1)}; }

}  // namespace

void CausalAttentionForward(const Tensor& qkv, Tensor& out, Tensor& lse) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "CausalAttentionForward";
  CheckOperands(kOp, {{"qkv", &qkv}, {"out", &out}, {"lse", &lse}});
  CheckQkv(kOp, "qkv", qkv);
  CheckDType(kOp, "out", out, qkv.dtype());
  CheckShapeEq(kOp, "out", out, OutShape(qkv));
  CheckDType(kOp, "lse", lse, AccumulationDType(qkv.dtype()));
  CheckShapeEq(kOp, "lse", lse, LseShape(qkv));
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(qkv)) {
    cuda::CausalAttentionForward(CudaOrdinal(qkv), qkv.dtype(), qkv.raw_data(), qkv.dim(0),
                                 qkv.dim(1), qkv.dim(3), qkv.dim(4), out.raw_data(),
                                 lse.data<float>());
    return;
  }
#endif
  if (qkv.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    CausalAttentionForward(f32.In(qkv), f32.Out(out), lse);
    return;
  }
  DispatchFloat(qkv.dtype(), [&]<typename T>() {
    cpu::CausalAttentionForward<T>(qkv.data<T>(), qkv.dim(0), qkv.dim(1), qkv.dim(3), qkv.dim(4),
                                   out.data<T>(), lse.data<T>());
  });
}

void CausalAttentionBackward(const Tensor& dout, const Tensor& qkv, const Tensor& out,
                             const Tensor& lse, Tensor& dqkv) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "CausalAttentionBackward";
  CheckOperands(kOp,
                {{"dout", &dout}, {"qkv", &qkv}, {"out", &out}, {"lse", &lse}, {"dqkv", &dqkv}});
  CheckQkv(kOp, "qkv", qkv);
  for (const Operand& operand : {Operand{"dout", &dout}, Operand{"out", &out}}) {
    CheckDType(kOp, operand.name, *operand.tensor, qkv.dtype());
    CheckShapeEq(kOp, operand.name, *operand.tensor, OutShape(qkv));
  }
  CheckDType(kOp, "lse", lse, AccumulationDType(qkv.dtype()));
  CheckShapeEq(kOp, "lse", lse, LseShape(qkv));
  CheckDType(kOp, "dqkv", dqkv, qkv.dtype());
  CheckShapeEq(kOp, "dqkv", dqkv, qkv.shape());
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(qkv)) {
    cuda::CausalAttentionBackward(CudaOrdinal(qkv), qkv.dtype(), dout.raw_data(), qkv.raw_data(),
                                  out.raw_data(), lse.data<float>(), qkv.dim(0), qkv.dim(1),
                                  qkv.dim(3), qkv.dim(4), dqkv.raw_data());
    return;
  }
#endif
  if (qkv.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    CausalAttentionBackward(f32.In(dout), f32.In(qkv), f32.In(out), lse, f32.InOut(dqkv));
    return;
  }
  DispatchFloat(qkv.dtype(), [&]<typename T>() {
    cpu::CausalAttentionBackward<T>(dout.data<T>(), qkv.data<T>(), out.data<T>(), lse.data<T>(),
                                    qkv.dim(0), qkv.dim(1), qkv.dim(3), qkv.dim(4), dqkv.data<T>());
  });
}

}  // namespace aoetron::ops
