// DeviceAccessScope: marks the code that may touch the elements of device tensors.
//
// Device-resident training means that inside a step only kernels touch tensor data; models/,
// parallel/ and launcher/ compose ops and exchange small host metadata. On a GPU a violation is a
// crash or garbage; on the CPU it would go unnoticed. The strict_cpu device (core/device.h) makes
// it visible without a GPU: Tensor::data()/raw_data() of a strict_cpu tensor fail unless the
// calling thread is inside a DeviceAccessScope. The scope is entered by
//   - every op in core/ops and core/optim (the "kernels"),
//   - the device copies of core/device_transfer.h,
//   - the communicator backends (parallel/mpi, parallel/nccl: a device communicator reads and
//     writes device buffers as NCCL does GPU memory).
// Nothing else may enter it. Scopes nest; they are per thread (a kernel's OpenMP workers receive
// raw pointers from the thread that entered the scope).
#pragma once

namespace aoetron {

class DeviceAccessScope {
 public:
  DeviceAccessScope() { ++depth_; }
  ~DeviceAccessScope() { --depth_; }
  DeviceAccessScope(const DeviceAccessScope&) = delete;
  DeviceAccessScope& operator=(const DeviceAccessScope&) = delete;

  // True when the calling thread is inside at least one scope.
  static bool active() { return depth_ > 0; }

 private:
  static inline thread_local int depth_ = 0;
};

}  // namespace aoetron
