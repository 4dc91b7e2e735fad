// Device memory for the CUDA backend's own scratch (kernel workspaces, tables), from the caching
// allocator (core/cuda/caching_allocator.h), behind a header the .cu files can include (they are
// compiled as C++17 and must not see core/device.h's C++20).
#pragma once

#include <cstddef>

namespace aoetron::cuda {

// At least `bytes` bytes on the current device, from the caching allocator; never null.
void* AllocateDeviceMemory(size_t bytes);
// Returns a block from AllocateDeviceMemory to the allocator; null is ignored.
void FreeDeviceMemory(void* ptr);

}  // namespace aoetron::cuda
