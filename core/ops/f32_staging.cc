#include "core/ops/f32_staging.h"

#include "core/ops/elementwise.h"

namespace aoetron::ops::internal {

Tensor& F32Staging::Widen(const Tensor& t, bool copy_values) {
  Tensor& wide = staged_.emplace_back(Tensor::Empty(t.shape(), DType::kF32, t.device()));
  if (copy_values) Convert(t, wide);
  return wide;
}

const Tensor& F32Staging::In(const Tensor& t) {
  if (t.dtype() != DType::kBF16) return t;
  return Widen(t, /*copy_values=*/true);
}

Tensor& F32Staging::Out(Tensor& t) {
  if (t.dtype() != DType::kBF16) return t;
  Tensor& wide = Widen(t, /*copy_values=*/false);
  write_back_.emplace_back(&wide, t);
  return wide;
}

Tensor& F32Staging::InOut(Tensor& t) {
  if (t.dtype() != DType::kBF16) return t;
  Tensor& wide = Widen(t, /*copy_values=*/true);
  write_back_.emplace_back(&wide, t);
  return wide;
}

F32Staging::~F32Staging() {
  for (auto& [wide, destination] : write_back_) Convert(*wide, destination);
}

}  // namespace aoetron::ops::internal
