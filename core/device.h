// Where a tensor's storage lives. Ops dispatch on the device of their operands; every operand of
// one op call must live on the same device.
//
//   cpu         host memory; CPU kernels; any host code may read and write the elements.
//   cuda:N      GPU N's memory; CUDA kernels; host code never touches the elements.
//   strict_cpu  host memory and CPU kernels, but treated like a GPU: only code inside a
//               DeviceAccessScope (core/device_access.h: the core/ops kernels, device copies and
//               the communicator backends) may touch the elements. Any other access fails loudly
//               naming the caller's file and line. It exists for tests: a model or training step
//               that runs on strict_cpu with the cpu numbers keeps no host loops over tensor data,
//               so it can run on a GPU too.
#pragma once

#include <cstdint>
#include <string>

namespace aoetron {

enum class DeviceKind : uint8_t { kCpu, kCuda, kStrictCpu };

struct Device {
  DeviceKind kind = DeviceKind::kCpu;
  int index = 0;  // CUDA ordinal; always 0 for the CPU kinds.

  static Device Cpu() { return {DeviceKind::kCpu, 0}; }
  static Device Cuda(int ordinal) { return {DeviceKind::kCuda, ordinal}; }
  static Device StrictCpu() { return {DeviceKind::kStrictCpu, 0}; }
  // Host code may touch the elements directly (cpu only).
  bool is_cpu() const { return kind == DeviceKind::kCpu; }
  bool is_cuda() const { return kind == DeviceKind::kCuda; }
  // The storage is host memory and the CPU kernels run on it (cpu and strict_cpu).
  bool host_memory() const { return kind != DeviceKind::kCuda; }
  bool operator==(const Device&) const = default;
  std::string ToString() const {
    switch (kind) {
      case DeviceKind::kCpu:
        return "cpu";
      case DeviceKind::kStrictCpu:
        return "strict_cpu";
      case DeviceKind::kCuda:
        break;
    }
    return "cuda:" + std::to_string(index);
  }
};

// True when this build contains the CUDA backend (the toolkit was found at configure time).
// Whether a GPU is actually present is a separate, run-time question.
bool CudaBackendBuilt();

}  // namespace aoetron
