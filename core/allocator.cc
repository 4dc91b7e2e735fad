#include "core/allocator.h"

#include <atomic>
#include <cstdlib>

#include "core/check.h"
#ifdef AOETRON_WITH_CUDA
#include "core/cuda/caching_allocator.h"
#endif

namespace aoetron {
namespace {

constexpr size_t kCpuAlignment = 64;

class CpuAllocator final : public Allocator {
 public:
  void* Allocate(size_t bytes, int /*device_index*/) override {
    const size_t rounded = (bytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    void* ptr = std::aligned_alloc(kCpuAlignment, rounded == 0 ? kCpuAlignment : rounded);
    AOETRON_CHECK(ptr != nullptr) << "out of host memory allocating " << bytes << " bytes";
    return ptr;
  }
  void Free(void* ptr) override { std::free(ptr); }
};

std::atomic<Allocator*> g_cuda_allocator{nullptr};

}  // namespace

Allocator& AllocatorFor(DeviceKind kind) {
  static CpuAllocator cpu;
  if (kind != DeviceKind::kCuda) return cpu;  // cpu and strict_cpu: host memory
  Allocator* cuda = g_cuda_allocator.load();
#ifdef AOETRON_WITH_CUDA
  // The CUDA backend's caching allocator unless another one was registered.
  if (cuda == nullptr) cuda = &cuda::CachingDeviceAllocator::Instance();
#endif
  AOETRON_CHECK(cuda != nullptr)
      << "CUDA memory requested but this build has no CUDA backend (built without CUDA)";
  return *cuda;
}

void RegisterAllocator(DeviceKind kind, Allocator* allocator) {
  AOETRON_CHECK(kind == DeviceKind::kCuda) << "only the CUDA allocator can be replaced";
  g_cuda_allocator.store(allocator);
}

bool CudaBackendBuilt() {
#ifdef AOETRON_WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace aoetron
