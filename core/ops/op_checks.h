// Operand checks shared by the op dispatch layer (core/ops/*.cc), so that every op rejects bad
// input with a message naming the op and the operand, in the same words.
// Internal to core/ops: not part of any op's contract.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "core/check.h"
#include "core/ops/float_visit.h"
#include "core/tensor.h"

namespace aoetron::ops::internal {

struct Operand {
  const char* name;
  const Tensor* tensor;
};

// All operands defined and on one device; a CUDA device only in a build with the CUDA backend.
inline void CheckOperands(const char* op, std::initializer_list<Operand> operands) {
  const Operand* first = nullptr;
  for (const Operand& operand : operands) {
    AOETRON_CHECK(operand.tensor->defined())
        << op << ": operand " << operand.name << " is an undefined tensor";
    if (first == nullptr) {
      first = &operand;
      continue;
    }
    AOETRON_CHECK(operand.tensor->device() == first->tensor->device())
        << op << ": operands on different devices: " << first->name << " is "
        << first->tensor->DebugString() << ", " << operand.name << " is "
        << operand.tensor->DebugString();
  }
  AOETRON_CHECK(first == nullptr || !first->tensor->device().is_cuda() || CudaBackendBuilt())
      << "no CUDA kernel for " << op << " in this build (built without CUDA): " << first->name
      << " is " << first->tensor->DebugString();
}

inline bool OnCuda(const Tensor& t) { return t.device().kind == DeviceKind::kCuda; }

// The float types of the floating-point ops: f32 (training), bf16 (mixed precision: a native
// kernel on CUDA, f32 arithmetic through F32Staging on the CPU), and f64 on the CPU only (the
// tests' finite-difference reference).
inline void CheckFloat(const char* op, const char* name, const Tensor& t) {
  if (OnCuda(t)) {
    AOETRON_CHECK(t.dtype() == DType::kF32 || t.dtype() == DType::kBF16)
        << op << ": " << name << " must be f32 or bf16 on CUDA, got " << t.DebugString();
    return;
  }
  AOETRON_CHECK(t.dtype() == DType::kF32 || t.dtype() == DType::kF64 || t.dtype() == DType::kBF16)
      << op << ": " << name << " must be f32, bf16 or f64, got " << t.DebugString();
}

inline void CheckDType(const char* op, const char* name, const Tensor& t, DType dtype) {
  AOETRON_CHECK(t.dtype() == dtype)
      << op << ": " << name << " must be " << DTypeName(dtype) << ", got " << t.DebugString();
}

// An operand that accumulates beside activations of dtype `activations`: a parameter gradient
// (dweight, dtable), a GEMM's C, a routing score or norm. Of the activations' dtype, or f32
// beside bf16 (AccumulationDType: mixed precision keeps these in f32).
inline void CheckGradientDType(const char* op, const char* name, const Tensor& t,
                               DType activations) {
  AOETRON_CHECK(t.dtype() == activations || t.dtype() == AccumulationDType(activations))
      << op << ": " << name << " must be " << DTypeName(activations)
      << (activations == DType::kBF16 ? " or f32" : "") << ", got " << t.DebugString();
}

inline void CheckRank(const char* op, const char* name, const Tensor& t, int rank) {
  AOETRON_CHECK(t.rank() == rank) << op << ": " << name << " must have rank " << rank << ", got "
                                  << t.DebugString();
}

inline void CheckShapeEq(const char* op, const char* name, const Tensor& t, const Shape& shape) {
  AOETRON_CHECK(t.shape() == shape) << op << ": " << name << " must have shape "
                                    << ShapeToString(shape) << ", got " << t.DebugString();
}

// `t` itself when it is in host memory (inside a kernel's DeviceAccessScope), else a host copy:
// for the small metadata-sized reductions whose result goes to the host anyway.
Tensor OnHost(const Tensor& t);

// Every entry of the i32 tensor `index` lies in [0, bound). `index` in host memory (read inside
// the calling kernel's DeviceAccessScope); CUDA kernels check their indices as they read them.
inline void CheckIndexRange(const char* op, const char* name, const Tensor& index, int64_t bound) {
  CheckDType(op, name, index, DType::kI32);
  const int32_t* entry = index.data<int32_t>();
  for (int64_t i = 0; i < index.numel(); ++i) {
    AOETRON_CHECK(entry[i] >= 0 && entry[i] < bound)
        << op << ": " << name << "[" << i << "] = " << entry[i] << " is outside [0, " << bound
        << ")";
  }
}

// The CUDA ordinal of a CUDA tensor (the dispatch passes it to core/ops/cuda/kernels.h).
inline int CudaOrdinal(const Tensor& t) { return t.device().index; }

// The float-dtype visitor (core/ops/float_visit.h).
using aoetron::DispatchFloat;

}  // namespace aoetron::ops::internal
