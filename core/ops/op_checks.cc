#include "core/ops/op_checks.h"

#include "core/device_transfer.h"

namespace aoetron::ops::internal {

Tensor OnHost(const Tensor& t) {
  if (t.device().host_memory()) return t;
  return CopyToDevice(t, Device::Cpu());
}

}  // namespace aoetron::ops::internal
