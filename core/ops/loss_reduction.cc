// Serial loops on the host: N is a micro-batch's tokens. A CUDA tensor is copied over first
// (internal::OnHost): N i32 or N f32, one small copy each.
#include "core/ops/loss_reduction.h"

#include "core/ops/op_checks.h"

namespace aoetron::ops {

using namespace internal;  // NOLINT: the op_checks helpers

int64_t CountTargets(const Tensor& targets) {
  const DeviceAccessScope kernel_access;
  CheckOperands("CountTargets", {{"targets", &targets}});
  CheckDType("CountTargets", "targets", targets, DType::kI32);
  const Tensor host = OnHost(targets);
  const int32_t* target = host.data<int32_t>();
  int64_t counted = 0;
  for (int64_t t = 0; t < host.numel(); ++t) counted += target[t] >= 0;
  return counted;
}

double SumInOrder(const Tensor& values) {
  const DeviceAccessScope kernel_access;
  CheckOperands("SumInOrder", {{"values", &values}});
  const Tensor host = OnHost(values);
  double sum = 0.0;
  DispatchFloat(host.dtype(), [&]<typename T>() {
    const T* v = host.data<T>();
    for (int64_t i = 0; i < host.numel(); ++i) sum += static_cast<double>(v[i]);
  });
  return sum;
}

}  // namespace aoetron::ops
