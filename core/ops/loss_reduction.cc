#include "core/ops/loss_reduction.h"

#include "core/device_transfer.h"
#include "core/ops/op_checks.h"

namespace aoetron::ops {
namespace {

using namespace internal;  // NOLINT: the op_checks helpers

}  // namespace

int64_t CountTargets(const Tensor& targets) {
  const DeviceAccessScope kernel_access;
  CheckOperands("CountTargets", {{"targets", &targets}});
  CheckDType("CountTargets", "targets", targets, DType::kI32);
  // On a GPU the N targets come over whole: N·4 bytes, as small as the one count.
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
  VisitHostFloat(host, [&](const auto* v) {
    for (int64_t i = 0; i < host.numel(); ++i) sum += static_cast<double>(v[i]);
  });
  return sum;
}

}  // namespace aoetron::ops
