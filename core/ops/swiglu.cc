#include "core/ops/swiglu.h"

#include "core/ops/cpu/kernels.h"
#include "core/ops/cuda/kernels.h"
#include "core/ops/f32_staging.h"
#include "core/ops/op_checks.h"

namespace aoetron::ops {
namespace {

using namespace internal;  // NOLINT: the op_checks helpers

// gate: [N, F] (float); every other operand the same dtype and shape.
void CheckSwiGluOperands(const char* op, const Tensor& gate, std::initializer_list<Operand> rest) {
  CheckFloat(op, "gate", gate);
  CheckRank(op, "gate", gate, 2);
  for (const Operand& operand : rest) {
    CheckDType(op, operand.name, *operand.tensor, gate.dtype());
    CheckShapeEq(op, operand.name, *operand.tensor, gate.shape());
  }
}

}  // namespace

void SwiGluForward(const Tensor& gate, const Tensor& up, Tensor& out) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "SwiGluForward";
  CheckOperands(kOp, {{"gate", &gate}, {"up", &up}, {"out", &out}});
  CheckSwiGluOperands(kOp, gate, {{"up", &up}, {"out", &out}});
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(gate)) {
    cuda::SwiGluForward(CudaOrdinal(gate), gate.dtype(), gate.raw_data(), up.raw_data(),
                        gate.numel(), out.raw_data());
    return;
  }
#endif
  if (gate.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    SwiGluForward(f32.In(gate), f32.In(up), f32.Out(out));
    return;
  }
  DispatchFloat(gate.dtype(), [&]<typename T>() {
    cpu::SwiGluForward<T>(gate.data<T>(), up.data<T>(), gate.numel(), out.data<T>());
  });
}

void SwiGluBackward(const Tensor& dout, const Tensor& gate, const Tensor& up, Tensor& dgate,
                    Tensor& dup) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "SwiGluBackward";
  CheckOperands(kOp,
                {{"dout", &dout}, {"gate", &gate}, {"up", &up}, {"dgate", &dgate}, {"dup", &dup}});
  CheckSwiGluOperands(kOp, gate, {{"dout", &dout}, {"up", &up}, {"dgate", &dgate}, {"dup", &dup}});
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(gate)) {
    cuda::SwiGluBackward(CudaOrdinal(gate), gate.dtype(), dout.raw_data(), gate.raw_data(),
                         up.raw_data(), gate.numel(), dgate.raw_data(), dup.raw_data());
    return;
  }
#endif
  if (gate.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    SwiGluBackward(f32.In(dout), f32.In(gate), f32.In(up), f32.InOut(dgate), f32.InOut(dup));
    return;
  }
  DispatchFloat(gate.dtype(), [&]<typename T>() {
    cpu::SwiGluBackward<T>(dout.data<T>(), gate.data<T>(), up.data<T>(), gate.numel(),
                           dgate.data<T>(), dup.data<T>());
  });
}

}  // namespace aoetron::ops
