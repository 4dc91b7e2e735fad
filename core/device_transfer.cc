#include "core/device_transfer.h"

#include <cstring>

#include "core/device_access.h"

#ifdef AOETRON_WITH_CUDA
#include "core/cuda/device_context.h"
#endif

namespace aoetron {
namespace {

constexpr const char* kNoBackend = "this build has no CUDA backend (built without CUDA)";

void CheckCudaBuilt(const char* call, const Tensor& t) {
  AOETRON_CHECK(!t.device().is_cuda() || CudaBackendBuilt())
      << call << ": " << t.DebugString() << ": " << kNoBackend;
}

}  // namespace

int CudaDeviceCount() {
#ifdef AOETRON_WITH_CUDA
  return cuda::VisibleDeviceCount();
#else
  return 0;
#endif
}

std::string NoCudaDeviceReason() {
#ifdef AOETRON_WITH_CUDA
  return cuda::NoDeviceReason();
#else
  return kNoBackend;
#endif
}

void SetCudaDevice(int ordinal) {
#ifdef AOETRON_WITH_CUDA
  cuda::SetCurrentDevice(ordinal);
#else
  AOETRON_CHECK(false) << "SetCudaDevice(" << ordinal << "): " << kNoBackend;
#endif
}

Tensor CopyToDevice(const Tensor& src, const Device& device) {
  CheckCudaBuilt("CopyToDevice", src);
  AOETRON_CHECK(!device.is_cuda() || CudaBackendBuilt())
      << "CopyToDevice to " << device.ToString() << ": " << kNoBackend;
  Tensor dst = Tensor::Empty(src.shape(), src.dtype(), device);
  CopyAcrossDevices(src, dst);
  return dst;
}

void CopyAcrossDevices(const Tensor& src, Tensor& dst) {
  AOETRON_CHECK(src.defined() && dst.defined()) << "CopyAcrossDevices: undefined tensor";
  AOETRON_CHECK(src.dtype() == dst.dtype() && src.numel() == dst.numel())
      << "CopyAcrossDevices: src " << src.DebugString() << " and dst " << dst.DebugString()
      << " differ in dtype or element count";
  CheckCudaBuilt("CopyAcrossDevices", src);
  CheckCudaBuilt("CopyAcrossDevices", dst);
  const size_t bytes = src.nbytes();
  const DeviceAccessScope device_copy;
  if (src.device().host_memory() && dst.device().host_memory()) {
    if (bytes > 0 && src.raw_data() != dst.raw_data()) {
      std::memmove(dst.raw_data(), src.raw_data(), bytes);
    }
    return;
  }
#ifdef AOETRON_WITH_CUDA
  if (src.device().host_memory()) {
    cuda::CopyHostToDevice(dst.device().index, src.raw_data(), dst.raw_data(), bytes);
  } else if (dst.device().host_memory()) {
    cuda::CopyDeviceToHost(src.device().index, src.raw_data(), dst.raw_data(), bytes);
  } else {
    AOETRON_CHECK(src.device() == dst.device())
        << "CopyAcrossDevices: " << src.DebugString() << " → " << dst.DebugString()
        << ": copies between two GPUs are not supported (one device per process)";
    cuda::CopyDeviceToDevice(src.device().index, src.raw_data(), dst.raw_data(), bytes);
  }
#endif
}

void SynchronizeDevice(const Device& device) {
  if (device.host_memory()) return;
#ifdef AOETRON_WITH_CUDA
  cuda::DeviceContext::Get(device.index).Synchronize();
#else
  AOETRON_CHECK(false) << "SynchronizeDevice(" << device.ToString() << "): " << kNoBackend;
#endif
}

}  // namespace aoetron
