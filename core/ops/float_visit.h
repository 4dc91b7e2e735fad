// The one float-dtype visitor: DispatchFloat(dtype, f) calls f.template operator()<float>() or
// <double>() by dtype (a C++20 templated lambda), so code that works on f32 (training) and f64
// (the finite-difference tests) names its loop once:
//   DispatchFloat(x.dtype(), [&]<typename T>() { Kernel<T>(x.data<T>(), ...); });
// bf16 has no arithmetic of its own: ops stage it to f32 first (core/ops/f32_staging.h).
#pragma once

#include "core/check.h"
#include "core/dtype.h"

namespace aoetron {

template <typename F>
inline void DispatchFloat(DType dtype, F&& f) {
  if (dtype == DType::kF32) {
    f.template operator()<float>();
  } else {
    AOETRON_CHECK(dtype == DType::kF64)
        << "DispatchFloat: f32 or f64 expected, got " << DTypeName(dtype);
    f.template operator()<double>();
  }
}

}  // namespace aoetron
