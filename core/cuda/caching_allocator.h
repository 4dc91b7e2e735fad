// CachingDeviceAllocator: device memory for CUDA tensors without a cudaMalloc per step.
//
// cudaMalloc and cudaFree are slow (cudaFree synchronises the whole device), so freed memory is
// kept and handed out again. Requests are rounded up to a size class:
//   ≤ 1 MiB: a multiple of 512 bytes   (small tensors: norms, biases, per-token scalars), served
//            from free lists of exactly that class;
//   > 1 MiB: a multiple of 2 MiB       (activations, parameters, arena blocks, the MoE layer's
//            data-dependent expert blocks and all-to-all payloads), served best-fit from the
//            device's segments (core/block_pool.h): a larger free block is split, and a freed
//            block merges with its free neighbours. So memory freed by one step's sizes serves the
//            next step's other sizes, instead of the reserve ratcheting up class by class; a miss
//            cudaMallocs a new segment of the request's class.
//
// Devices: Allocate(bytes, device) allocates on `device` whatever the calling thread's current
// device is (the tensor's own device index); each device has its own lists and segments, and
// Free returns memory to the device it came from.
//
// Streams: a freed block may still be read or written by kernels already enqueued on the compute
// stream. Handing it out again is safe for work on that same stream (it runs after them, in
// stream order) — which is all of aoetron's kernels. A block used by another stream (NCCL's) must
// not be freed until that stream's work is ordered before the compute stream; the NCCL
// communicator does this before each collective returns (or, for a started one, before its
// handle lets go of its scratch).
//
// Out of memory: the allocator frees every cached block and every entirely free segment of the
// device and retries once; if that fails too the process ends with the request size and the
// allocator's statistics.
// Thread safety: every method may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/allocator.h"
#include "core/block_pool.h"

namespace aoetron::cuda {

struct AllocatorStats {
  int64_t bytes_in_use = 0;       // handed out and not yet freed (size classes, not requests)
  int64_t peak_bytes_in_use = 0;  // the maximum of bytes_in_use so far
  int64_t bytes_reserved = 0;     // obtained from cudaMalloc and not returned (in use + cached)
  int64_t allocations = 0;        // Allocate calls
  int64_t cache_hits = 0;         // Allocate calls served from a free list
  int64_t device_mallocs = 0;     // cudaMalloc calls
  int64_t device_frees = 0;       // cudaFree calls (only when the cache is emptied)
};

class CachingDeviceAllocator final : public Allocator {
 public:
  // The process-wide instance used for every CUDA tensor (core/allocator.cc hands it out for
  // DeviceKind::kCuda). Never destroyed: blocks may be freed during static destruction, after
  // which the CUDA runtime may already be gone.
  static CachingDeviceAllocator& Instance();

  // A block of at least `bytes` on device `device_index`, 256-byte aligned (cudaMalloc's
  // alignment; every size class is a multiple of 512). Never null; 0 bytes gives a smallest-class
  // block.
  void* Allocate(size_t bytes, int device_index) override;
  // The same on the calling thread's current device (the backend's own scratch).
  void* AllocateOnCurrentDevice(size_t bytes);
  // Returns a block to the free list of its device. Null is ignored; a pointer this allocator did
  // not hand out is a CHECK failure.
  void Free(void* ptr) override;

  AllocatorStats Stats(int ordinal) const;
  // cudaFree of every cached (free) block of every device. Blocks in use are untouched.
  void ReleaseCachedBlocks();
  // The size class of a request (exposed for tests and the docs).
  static size_t SizeClass(size_t bytes);

 private:
  CachingDeviceAllocator() = default;
  struct Block {
    size_t size;  // its size class
    int device;
    bool large;  // from the device's BlockPool (else a small free list)
  };
  struct DevicePool {
    std::map<size_t, std::vector<void*>> free_blocks;  // small size class → free blocks
    BlockPool large = BlockPool(/*min_split=*/size_t{2} << 20);
    AllocatorStats stats;
  };
  // cudaMalloc on `device` (the current device there), with the out-of-memory retry.
  void* DeviceMallocLocked(int device, size_t size, size_t requested);
  DevicePool& PoolLocked(int ordinal);
  void ReleaseLocked(int ordinal);

  mutable std::mutex mutex_;
  std::unordered_map<void*, Block> live_;  // blocks handed out
  std::map<int, DevicePool> pools_;
};

}  // namespace aoetron::cuda
