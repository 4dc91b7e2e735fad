#include "core/cuda/caching_allocator.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <optional>

#include "core/check.h"
#include "core/cuda/cuda_check.h"
#include "core/cuda/device_memory.h"

namespace aoetron::cuda {
namespace {

constexpr size_t kSmallLimit = size_t{1} << 20;  // 1 MiB
constexpr size_t kSmallUnit = 512;
constexpr size_t kLargeUnit = size_t{2} << 20;  // 2 MiB

size_t RoundUp(size_t x, size_t unit) { return (x + unit - 1) / unit * unit; }

std::string Describe(const AllocatorStats& s) {
  constexpr double kMiB = 1 << 20;
  return "in use " + std::to_string(s.bytes_in_use / kMiB) + " MiB (peak " +
         std::to_string(s.peak_bytes_in_use / kMiB) + " MiB), reserved " +
         std::to_string(s.bytes_reserved / kMiB) + " MiB, " + std::to_string(s.device_mallocs) +
         " cudaMalloc calls";
}

}  // namespace

CachingDeviceAllocator& CachingDeviceAllocator::Instance() {
  static CachingDeviceAllocator* instance = new CachingDeviceAllocator();
  return *instance;
}

size_t CachingDeviceAllocator::SizeClass(size_t bytes) {
  if (bytes <= kSmallLimit) return std::max(kSmallUnit, RoundUp(bytes, kSmallUnit));
  return RoundUp(bytes, kLargeUnit);
}

CachingDeviceAllocator::DevicePool& CachingDeviceAllocator::PoolLocked(int ordinal) {
  return pools_[ordinal];
}

// Makes `device` current for its scope and restores the previous one.
class ScopedDevice {
 public:
  explicit ScopedDevice(int device) {
    CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) CUDA_CHECK(cudaSetDevice(device));
    device_ = device;
  }
  ~ScopedDevice() {
    if (previous_ != device_) cudaSetDevice(previous_);
  }
  ScopedDevice(const ScopedDevice&) = delete;
  ScopedDevice& operator=(const ScopedDevice&) = delete;

 private:
  int previous_ = 0, device_ = 0;
};

void* CachingDeviceAllocator::DeviceMallocLocked(int device, size_t size, size_t requested) {
  DevicePool& pool = PoolLocked(device);
  const ScopedDevice on(device);
  void* ptr = nullptr;
  cudaError_t status = cudaMalloc(&ptr, size);
  if (status == cudaErrorMemoryAllocation) {
    // Give the cached blocks and free segments back to the driver and try once more.
    cudaGetLastError();
    ReleaseLocked(device);
    status = cudaMalloc(&ptr, size);
  }
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    AOETRON_CHECK(false) << "cuda:" << device << ": out of device memory allocating " << requested
                         << " bytes (size class " << size << "); " << Describe(pool.stats);
  }
  CUDA_CHECK(status);
  ++pool.stats.device_mallocs;
  pool.stats.bytes_reserved += static_cast<int64_t>(size);
  return ptr;
}

void* CachingDeviceAllocator::AllocateOnCurrentDevice(size_t bytes) {
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  return Allocate(bytes, device);
}

void* CachingDeviceAllocator::Allocate(size_t bytes, int device) {
  const size_t size = SizeClass(bytes);
  const bool large = size > kSmallLimit;
  std::lock_guard<std::mutex> lock(mutex_);
  DevicePool& pool = PoolLocked(device);
  ++pool.stats.allocations;
  void* ptr = nullptr;
  if (large) {
    std::optional<uintptr_t> block = pool.large.Take(size);
    if (block.has_value()) {
      ++pool.stats.cache_hits;
    } else {
      void* segment = DeviceMallocLocked(device, size, bytes);
      pool.large.AddSegment(reinterpret_cast<uintptr_t>(segment), size);
      block = pool.large.Take(size);
      AOETRON_CHECK(block.has_value() && *block == reinterpret_cast<uintptr_t>(segment));
    }
    ptr = reinterpret_cast<void*>(*block);
  } else {
    auto cached = pool.free_blocks.find(size);
    if (cached != pool.free_blocks.end() && !cached->second.empty()) {
      ptr = cached->second.back();
      cached->second.pop_back();
      ++pool.stats.cache_hits;
    } else {
      ptr = DeviceMallocLocked(device, size, bytes);
    }
  }
  live_[ptr] = Block{size, device, large};
  pool.stats.bytes_in_use += static_cast<int64_t>(size);
  pool.stats.peak_bytes_in_use = std::max(pool.stats.peak_bytes_in_use, pool.stats.bytes_in_use);
  return ptr;
}

void CachingDeviceAllocator::Free(void* ptr) {
  if (ptr == nullptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = live_.find(ptr);
  AOETRON_CHECK(it != live_.end()) << "CachingDeviceAllocator::Free of a pointer it did not "
                                      "allocate (or freed twice): "
                                   << ptr;
  const Block block = it->second;
  live_.erase(it);
  DevicePool& pool = PoolLocked(block.device);
  if (block.large) {
    pool.large.Give(reinterpret_cast<uintptr_t>(ptr));
  } else {
    pool.free_blocks[block.size].push_back(ptr);
  }
  pool.stats.bytes_in_use -= static_cast<int64_t>(block.size);
}

AllocatorStats CachingDeviceAllocator::Stats(int ordinal) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = pools_.find(ordinal);
  return it == pools_.end() ? AllocatorStats{} : it->second.stats;
}

void CachingDeviceAllocator::ReleaseLocked(int ordinal) {
  DevicePool& pool = PoolLocked(ordinal);
  int previous = 0;
  CUDA_CHECK(cudaGetDevice(&previous));
  CUDA_CHECK(cudaSetDevice(ordinal));
  // Kernels enqueued before the blocks were freed may still use them: cudaFree waits for the
  // device to be idle before it returns the memory.
  for (auto& [size, blocks] : pool.free_blocks) {
    for (void* ptr : blocks) {
      CUDA_CHECK(cudaFree(ptr));
      ++pool.stats.device_frees;
      pool.stats.bytes_reserved -= static_cast<int64_t>(size);
    }
    blocks.clear();
  }
  for (const auto& [base, size] : pool.large.RemoveFreeSegments()) {
    CUDA_CHECK(cudaFree(reinterpret_cast<void*>(base)));
    ++pool.stats.device_frees;
    pool.stats.bytes_reserved -= static_cast<int64_t>(size);
  }
  CUDA_CHECK(cudaSetDevice(previous));
}

void* AllocateDeviceMemory(size_t bytes) {
  return CachingDeviceAllocator::Instance().AllocateOnCurrentDevice(bytes);
}

void FreeDeviceMemory(void* ptr) { CachingDeviceAllocator::Instance().Free(ptr); }

void CachingDeviceAllocator::ReleaseCachedBlocks() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [ordinal, pool] : pools_) ReleaseLocked(ordinal);
}

}  // namespace aoetron::cuda
