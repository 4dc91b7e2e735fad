// bf16 storage, f32 arithmetic: how an op runs on bf16 operands where its device has no bf16
// kernel for them (every op on the CPU; on CUDA, the ops whose kernels take one dtype for all
// float operands when mixed precision hands them an f32 operand, e.g. an f32 weight gradient).
//
// The op widens each bf16 operand to an f32 tensor on the same device (exact), runs its f32
// kernel on the widened operands, and, when the staging ends, rounds every output back into its
// bf16 tensor once (round to nearest even). f32 and f64 operands pass through as themselves.
// The result is what a bf16 kernel with f32 arithmetic computes (load bf16 → compute in f32 →
// store bf16), the contract of the CUDA kernels, at the cost of the extra conversions.
//
//   if (x.dtype() == DType::kBF16) {  // after the CUDA branch: the CPU has no bf16 kernels
//     F32Staging f32;
//     RmsNormForward(f32.In(x), f32.In(weight), eps, f32.Out(y), f32.Out(rstd));
//     return;
//   }  // f32's destructor has rounded y back into bf16; rstd (f32) was written directly
//
// Internal to core/ops.
#pragma once

#include <deque>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace aoetron::ops::internal {

class F32Staging {
 public:
  F32Staging() = default;
  F32Staging(const F32Staging&) = delete;
  F32Staging& operator=(const F32Staging&) = delete;
  // Rounds each Out/InOut operand back into its bf16 tensor.
  ~F32Staging();

  // An operand the op only reads: t itself, or its f32 widening when t is bf16.
  const Tensor& In(const Tensor& t);
  // An operand the op overwrites without reading (forward outputs): t itself, or an uninitialised
  // f32 tensor that is rounded into t at the end.
  Tensor& Out(Tensor& t);
  // An operand the op reads and writes (backward's +=, in-place updates): t itself, or its f32
  // widening, rounded back into t at the end.
  Tensor& InOut(Tensor& t);

 private:
  Tensor& Widen(const Tensor& t, bool copy_values);

  std::deque<Tensor> staged_;  // stable addresses for the references returned
  std::vector<std::pair<Tensor*, Tensor>> write_back_;  // (staged f32, its bf16 destination)
};

}  // namespace aoetron::ops::internal
