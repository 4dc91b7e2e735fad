// Per-device state of the CUDA backend: the compute stream, the deferred-error record, and the
// copies between host and device memory.
//
// Streams. Every op on a device enqueues its kernels on that device's one compute stream, so ops
// run in the order the host issues them and a kernel always sees the results of the ops before
// it, without events. The stream is created non-blocking (it does not synchronise with the legacy
// default stream); nothing in aoetron uses the default stream. Work on other streams (the NCCL
// communication stream) is ordered against the compute stream with events by its owner
// (parallel/nccl/).
//
// Devices. A process drives one device (one rank per GPU): call SetCurrentDevice(local_rank)
// once at start-up. Memory is allocated on the current device (core/cuda/caching_allocator.h),
// and ops CHECK that their tensors' ordinal is the current device.
//
// Thread safety: Get() may be called from any thread. The compute stream is meant to be driven by
// one host thread at a time (the training loop); kernels enqueued from two threads at once are
// ordered arbitrarily against each other.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

#include "core/cuda/device_errors.h"

namespace aoetron::cuda {

// Number of visible CUDA devices: 0 when there is no driver, no GPU, or none visible
// (CUDA_VISIBLE_DEVICES). Never fails, so tests can ask it before anything else.
int VisibleDeviceCount();
// Why VisibleDeviceCount() is 0 ("cudaGetDeviceCount: cudaErrorNoDevice (no CUDA-capable device
// is detected)"), or "" when a device is visible.
std::string NoDeviceReason();

// Makes `ordinal` the calling thread's current device (CHECKs it is visible).
void SetCurrentDevice(int ordinal);
int CurrentDevice();
// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)".
std::string DeviceDescription(int ordinal);

class DeviceContext {
 public:
  // The context of device `ordinal`, created on first use. CHECKs that `ordinal` is the current
  // device of the calling thread: kernels launch on the current device, so a tensor of another
  // device would be read from the wrong memory.
  static DeviceContext& Get(int ordinal);

  int ordinal() const { return ordinal_; }
  cudaStream_t stream() const { return stream_; }
  // Device pointer to this device's error record (device_errors.h), for kernels.
  DeviceErrorRecord* error_record() const { return error_record_; }
  // The multiprocessor count, for sizing grids.
  int multiprocessors() const { return multiprocessors_; }
  // Largest dynamic shared memory one block may opt into (bytes).
  size_t max_shared_memory_per_block() const { return max_shared_per_block_; }

  // Waits until every operation enqueued on the compute stream has finished, then ends the
  // process if a kernel recorded an error (device_errors.h), naming it.
  void Synchronize();

 private:
  explicit DeviceContext(int ordinal);
  int ordinal_;
  cudaStream_t stream_ = nullptr;
  DeviceErrorRecord* error_record_ = nullptr;
  int multiprocessors_ = 0;
  size_t max_shared_per_block_ = 0;
};

// Copies on the compute stream of `ordinal`, in order with the ops around them.
// Host → device: returns once `host` may be reused (the data is staged); the copy itself
// completes in stream order before any later op on the device.
void CopyHostToDevice(int ordinal, const void* host, void* device, size_t bytes);
// Device → host: waits for every op enqueued before it, copies, and returns with the data in
// `host`. Synchronises, so deferred kernel errors are raised here (see Synchronize()).
void CopyDeviceToHost(int ordinal, const void* device, void* host, size_t bytes);
// Device → device on one device; enqueued, returns at once.
void CopyDeviceToDevice(int ordinal, const void* src, void* dst, size_t bytes);

}  // namespace aoetron::cuda
