// VisitFloatData(t, f): calls f with t's element pointer typed as float* or double*, for the
// few host-side loops outside the kernels that must work in both training (f32) and the
// finite-difference tests (f64).
#pragma once

#include "core/tensor.h"

namespace aoetron {

template <typename Visitor>
void VisitFloatData(Tensor& t, Visitor&& visit) {
  AOETRON_CHECK(t.device().is_cpu()) << "host loop over " << t.DebugString();
  if (t.dtype() == DType::kF64) {
    visit(t.data<double>());
  } else {
    visit(t.data<float>());
  }
}

template <typename Visitor>
void VisitFloatData(const Tensor& t, Visitor&& visit) {
  AOETRON_CHECK(t.device().is_cpu()) << "host loop over " << t.DebugString();
  if (t.dtype() == DType::kF64) {
    visit(t.data<double>());
  } else {
    visit(t.data<float>());
  }
}

}  // namespace aoetron
