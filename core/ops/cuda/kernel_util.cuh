// Shared pieces of the CUDA kernels (core/ops/cuda/*.cu): element types, grid-stride loops,
// deterministic reductions, device-side error reporting, dtype dispatch.
//
// Precision policy: "float" arrays are f32 or bf16 (T below); every kernel loads T, computes in
// f32 (f64 where the CPU contract says so: grouped L2 norm, sums of squares), and rounds once
// when it stores T. Reductions (norms, softmax sums, losses, statistics) are f32 or wider.
//
// Determinism: no kernel uses floating-point atomics. Every reduction runs over a fixed
// partition (a row per block, chunks of fixed size) in a fixed tree order, so results are the
// same bits from run to run on one GPU model.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "core/check.h"
#include "core/cuda/cuda_check.h"
#include "core/cuda/device_context.h"
#include "core/cuda/device_errors.h"
#include "core/cuda/device_memory.h"
#include "core/dtype.h"

namespace aoetron::ops::cuda {

using aoetron::cuda::DeviceContext;
using aoetron::cuda::DeviceErrorCode;
using aoetron::cuda::DeviceErrorRecord;
using bf16 = __nv_bfloat16;

// ---- Element types ------------------------------------------------------------------------------

__device__ __forceinline__ float ToFloat(float x) { return x; }
__device__ __forceinline__ float ToFloat(bf16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T FromFloat(float x);
template <>
__device__ __forceinline__ float FromFloat<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ bf16 FromFloat<bf16>(float x) {
  return __float2bfloat16_rn(x);  // round to nearest even, as the host conversion
}

template <typename T>
struct TypeTag {
  using type = T;
};

// Calls f(TypeTag<float>{}) or f(TypeTag<bf16>{}) by dtype (the float types of the CUDA ops):
//   DispatchFloat(dtype, "Op", [&](auto tag) { using T = typename decltype(tag)::type; ... });
// (a generic lambda: nvcc compiles these files as C++17, see core/cuda/CMakeLists.txt).
template <typename F>
void DispatchFloat(DType dtype, const char* op, F&& f) {
  if (dtype == DType::kF32) {
    f(TypeTag<float>{});
  } else {
    AOETRON_CHECK(dtype == DType::kBF16)
        << op << ": CUDA kernels take f32 or bf16, got " << DTypeName(dtype);
    f(TypeTag<bf16>{});
  }
}

// ---- Launch shapes ------------------------------------------------------------------------------

// for (i = global thread index; i < n; i += total threads): every element is visited once
// whatever the grid size, so a grid may be capped without losing elements.
#define AOETRON_GRID_STRIDE_LOOP(i, n)                                                   \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n items: enough to fill the device (32 blocks of 256
// threads per SM is more than an SM holds), never more than the items need, at least 1.
inline unsigned GridFor(int64_t n, const DeviceContext& context, int threads = kThreads) {
  const int64_t needed = (n + threads - 1) / threads;
  const int64_t cap = static_cast<int64_t>(context.multiprocessors()) * 32;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(needed, cap)));
}

// ---- Deterministic reductions -------------------------------------------------------------------

template <typename A>
__device__ __forceinline__ A WarpSum(A value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  }
  return value;  // every lane holds the sum
}

__device__ __forceinline__ float WarpMax(float value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  }
  return value;
}

// Sum over the block (blockDim.x a multiple of 32, ≤ 1024); every thread gets the result.
// `scratch` holds 32 values of A in shared memory; the call synchronises the block twice, so
// consecutive calls may reuse one scratch.
template <typename A>
__device__ A BlockSum(A value, A* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  value = WarpSum(value);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  A total = lane < warps ? scratch[lane] : A(0);
  return WarpSum(total);
}

// Max over the block, as BlockSum. fmaxf ignores a NaN operand; callers that must propagate NaN
// do so through the values they later sum.
__device__ inline float BlockMax(float value, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  value = WarpMax(value);
  __syncthreads();
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  float total = lane < warps ? scratch[lane] : -INFINITY;
  return WarpMax(total);
}

// ---- Scratch memory -----------------------------------------------------------------------------

// Device scratch for the duration of one op, from the caching allocator. Freed when the op
// returns, possibly before its kernels have run: the block is only reused by later work on the
// same compute stream, which runs after them (see core/cuda/caching_allocator.h).
template <typename E>
class DeviceScratch {
 public:
  explicit DeviceScratch(int64_t count)
      : data_(static_cast<E*>(
            aoetron::cuda::AllocateDeviceMemory(static_cast<size_t>(count) * sizeof(E)))) {}
  ~DeviceScratch() { aoetron::cuda::FreeDeviceMemory(data_); }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  E* get() const { return data_; }

 private:
  E* data_;
};

// ---- Errors found on the device (core/cuda/device_errors.h)
// --------------------------------------

__device__ __forceinline__ void RaiseDeviceError(DeviceErrorRecord* record, DeviceErrorCode code,
                                                 int64_t detail) {
  if (atomicCAS(&record->code, 0, static_cast<int32_t>(code)) == 0) record->detail = detail;
}

// values[p] when it lies in [0, bound); else raises `code` (detail p) and returns −1, which the
// caller skips.
__device__ __forceinline__ int64_t CheckedIndex(const int32_t* values, int64_t p, int64_t bound,
                                                DeviceErrorCode code, DeviceErrorRecord* error) {
  const int32_t value = values[p];
  if (value < 0 || value >= bound) {
    RaiseDeviceError(error, code, p);
    return -1;
  }
  return value;
}

// The expert of pair p, checked (kExpertIndexOutOfRange).
__device__ __forceinline__ int64_t CheckedExpert(const int32_t* expert_index, int64_t p,
                                                 int64_t experts, DeviceErrorRecord* error) {
  return CheckedIndex(expert_index, p, experts, DeviceErrorCode::kExpertIndexOutOfRange, error);
}

}  // namespace aoetron::ops::cuda
