// Raw memory for tensors, per device.
//
// The CPU allocator returns 64-byte aligned blocks (one cache line, one AVX-512 vector). In a build
// with the CUDA backend, CUDA memory comes from its caching allocator
// (core/cuda/caching_allocator.h) unless RegisterAllocator() installed another; in a build
// without it, a request for CUDA memory is a CHECK failure naming the missing backend.
// Thread safety: AllocatorFor() and the CPU allocator may be called from any thread.
#pragma once

#include <cstddef>

#include "core/device.h"

namespace aoetron {

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Returns at least `bytes` bytes on device `device_index` of the allocator's kind (the CPU
  // ignores it; a CUDA allocator allocates on that GPU whatever the calling thread's current
  // device is), never null (out of memory aborts with a message).
  virtual void* Allocate(size_t bytes, int device_index) = 0;
  // Frees a pointer returned by Allocate() of this allocator. Null is ignored.
  virtual void Free(void* ptr) = 0;
};

// The allocator for `kind`. Never null for kCpu.
Allocator& AllocatorFor(DeviceKind kind);

// Installs the allocator used for `kind` (the CUDA backend does this once at start-up).
void RegisterAllocator(DeviceKind kind, Allocator* allocator);

}  // namespace aoetron
