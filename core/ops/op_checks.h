// Operand checks shared by the op dispatch layer (core/ops/*.cc), so that every op rejects bad
// input with a message naming the op and the operand, in the same words.
// Internal to core/ops: not part of any op's contract.
#pragma once

#include <initializer_list>

#include "core/check.h"
#include "core/tensor.h"

namespace aoetron::ops::internal {

struct Operand {
  const char* name;
  const Tensor* tensor;
};

// All operands defined and on one device; and, since this build has CPU kernels only, that
// device is the CPU.
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
  AOETRON_CHECK(first == nullptr || first->tensor->device().is_cpu())
      << "no CUDA kernel for " << op << " in this build (" << first->name << " is "
      << first->tensor->DebugString() << ")";
}

// f32 or f64: the float types every floating-point op accepts.
inline void CheckFloat(const char* op, const char* name, const Tensor& t) {
  AOETRON_CHECK(t.dtype() == DType::kF32 || t.dtype() == DType::kF64)
      << op << ": " << name << " must be f32 or f64, got " << t.DebugString();
}

inline void CheckDType(const char* op, const char* name, const Tensor& t, DType dtype) {
  AOETRON_CHECK(t.dtype() == dtype)
      << op << ": " << name << " must be " << DTypeName(dtype) << ", got " << t.DebugString();
}

inline void CheckRank(const char* op, const char* name, const Tensor& t, int rank) {
  AOETRON_CHECK(t.rank() == rank) << op << ": " << name << " must have rank " << rank << ", got "
                                  << t.DebugString();
}

inline void CheckShapeEq(const char* op, const char* name, const Tensor& t, const Shape& shape) {
  AOETRON_CHECK(t.shape() == shape) << op << ": " << name << " must have shape "
                                    << ShapeToString(shape) << ", got " << t.DebugString();
}

// Calls f.template operator()<float>() or <double>() by dtype (a C++20 templated lambda), so a
// dispatch function names the kernel once: DispatchFloat(x.dtype(), [&]<typename T>() {...}).
template <typename F>
inline void DispatchFloat(DType dtype, F&& f) {
  if (dtype == DType::kF32) {
    f.template operator()<float>();
  } else {
    AOETRON_CHECK(dtype == DType::kF64) << "DispatchFloat: unexpected " << DTypeName(dtype);
    f.template operator()<double>();
  }
}

}  // namespace aoetron::ops::internal
