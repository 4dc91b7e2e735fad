// Moving tensors between the host and CUDA devices, from code that need not know whether this
// build has the CUDA backend.
//
// In a build without CUDA (CudaBackendBuilt() is false) CudaDeviceCount() is 0 and every call
// that names a CUDA tensor is a CHECK failure saying the build has no CUDA backend; CPU → CPU
// copies work everywhere.
//
// Ordering: device work is asynchronous. Copies to a device are enqueued on that device's compute
// stream (core/cuda/device_context.h), in order with the ops; a copy to the host waits for every
// op enqueued before it, so the host sees their results, and raises any error a kernel recorded
// (core/cuda/device_errors.h).
// Thread safety: as for the ops (one host thread drives a device's stream at a time).
#pragma once

#include <string>

#include "core/tensor.h"

namespace aoetron {

// Visible CUDA devices; 0 without the backend, without a driver or without a GPU. Never fails.
int CudaDeviceCount();
// Why CudaDeviceCount() is 0, in words ("this build has no CUDA backend (built without CUDA)",
// "cudaGetDeviceCount: cudaErrorNoDevice (...)"); "" when a device is visible.
std::string NoCudaDeviceReason();
// Makes `ordinal` this thread's current CUDA device (one device per process, set at start-up).
void SetCudaDevice(int ordinal);

// A new owned tensor on `device` with src's shape, dtype and elements.
Tensor CopyToDevice(const Tensor& src, const Device& device);
// dst = src across devices (any pair of CPU and CUDA); same dtype and element count.
void CopyAcrossDevices(const Tensor& src, Tensor& dst);
// Returns when every op enqueued on `device` has finished; raises recorded kernel errors. A no-op
// for the CPU.
void SynchronizeDevice(const Device& device);

}  // namespace aoetron
