// Where a tensor's storage lives. Ops dispatch on the device of their operands; every operand of
// one op call must live on the same device.
#pragma once

#include <string>

namespace aoetron {

enum class DeviceKind : uint8_t { kCpu, kCuda };

struct Device {
  DeviceKind kind = DeviceKind::kCpu;
  int index = 0;  // CUDA ordinal; always 0 for the CPU.

  static Device Cpu() { return {DeviceKind::kCpu, 0}; }
  static Device Cuda(int ordinal) { return {DeviceKind::kCuda, ordinal}; }
  bool is_cpu() const { return kind == DeviceKind::kCpu; }
  bool operator==(const Device&) const = default;
  std::string ToString() const {
    return kind == DeviceKind::kCpu ? "cpu" : "cuda:" + std::to_string(index);
  }
};

// True when this build contains the CUDA backend (the toolkit was found at configure time).
// Whether a GPU is actually present is a separate, run-time question.
bool CudaBackendBuilt();

}  // namespace aoetron
