#include "core/ops/rope.h"

#include "core/ops/cpu/kernels.h"
#include "core/ops/cuda/kernels.h"
#include "core/ops/f32_staging.h"
#include "core/ops/op_checks.h"

namespace aoetron::ops {
namespace {

using namespace internal;  // NOLINT: the op_checks helpers

void RunRope(const char* op, const char* name, Tensor& qkv, float theta, bool inverse,
             int64_t first_position) {
  const DeviceAccessScope kernel_access;
  CheckOperands(op, {{name, &qkv}});
  CheckFloat(op, name, qkv);
  CheckRank(op, name, qkv, 5);
  AOETRON_CHECK(qkv.dim(2) == 3) << op << ": " << name << " must be [B, T, 3, H, hd], got "
                                 << qkv.DebugString();
  AOETRON_CHECK(qkv.dim(4) % 2 == 0)
      << op << ": head dimension must be even for rotate-half pairs, got " << qkv.DebugString();
  AOETRON_CHECK(theta > 0.0f) << op << ": theta must be positive, got " << theta;
  AOETRON_CHECK(first_position >= 0) << op << ": first position " << first_position;
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(qkv)) {
    cuda::Rope(CudaOrdinal(qkv), qkv.dtype(), qkv.raw_data(), qkv.dim(0), qkv.dim(1), qkv.dim(3),
               qkv.dim(4), theta, inverse, first_position);
    return;
  }
#endif
  if (qkv.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    RunRope(op, name, f32.InOut(qkv), theta, inverse, first_position);
    return;
  }
  DispatchFloat(qkv.dtype(), [&]<typename T>() {
    cpu::Rope<T>(qkv.data<T>(), qkv.dim(0), qkv.dim(1), qkv.dim(3), qkv.dim(4), theta, inverse,
                 first_position);
  });
}

}  // namespace

void RopeForward(Tensor& qkv, float theta, int64_t first_position) {
  RunRope("RopeForward", "qkv", qkv, theta, false, first_position);
}

void RopeBackward(Tensor& dqkv, float theta) {
  RunRope("RopeBackward", "dqkv", dqkv, theta, true, 0);
}

}  // namespace aoetron::ops
