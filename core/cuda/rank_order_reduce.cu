// Rank-order reduction on the device: one thread per element walks the p contributions in rank
// order (p is a group size, a handful to a few hundred), so the result is the host function's.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "core/check.h"
#include "core/cuda/cuda_check.h"
#include "core/cuda/rank_order_reduce.h"

namespace aoetron::cuda {
namespace {

template <typename T>
__device__ __forceinline__ T Combine(RankOrderOp op, T accumulated, T next) {
  if (op == RankOrderOp::kSum) return accumulated + next;
  // max: NaN sticks; a later value replaces the kept one only when strictly greater.
  if (accumulated != accumulated) return accumulated;
  if (next != next) return next;
  return next > accumulated ? next : accumulated;
}

// Integers sum in unsigned arithmetic: wraps instead of overflowing (as on the host).
template <typename T, typename Wrap>
__global__ void ReduceKernel(RankOrderOp op, const T* stacked, int p, int64_t count, T* out) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    T accumulated = stacked[i];
    for (int r = 1; r < p; ++r) {
      const T next = stacked[static_cast<int64_t>(r) * count + i];
      if (op == RankOrderOp::kSum) {
        accumulated = static_cast<T>(static_cast<Wrap>(accumulated) + static_cast<Wrap>(next));
      } else {
        accumulated = Combine(op, accumulated, next);
      }
    }
    out[i] = accumulated;
  }
}

// bf16: each element's contributions widened to f32 and combined in f32 in rank order, rounded
// once to nearest even (the host's ReduceInRankOrder does the same).
__global__ void ReduceBf16Kernel(RankOrderOp op, const __nv_bfloat16* stacked, int p, int64_t count,
                                 __nv_bfloat16* out) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float accumulated = __bfloat162float(stacked[i]);
    for (int r = 1; r < p; ++r) {
      accumulated =
          Combine(op, accumulated, __bfloat162float(stacked[static_cast<int64_t>(r) * count + i]));
    }
    out[i] = __float2bfloat16_rn(accumulated);
  }
}

template <typename T, typename Wrap>
void Launch(RankOrderOp op, const void* stacked, int p, int64_t count, void* out,
            cudaStream_t stream) {
  const int64_t blocks = std::min<int64_t>((count + 255) / 256, 65536);
  ReduceKernel<T, Wrap><<<static_cast<unsigned>(blocks), 256, 0, stream>>>(
      op, static_cast<const T*>(stacked), p, count, static_cast<T*>(out));
  AOETRON_CUDA_CHECK_LAUNCH("ReduceKernel");
}

}  // namespace

void ReduceInRankOrder(RankOrderOp op, DType dtype, const void* stacked, int p, int64_t count,
                       void* out, cudaStream_t stream) {
  if (count == 0) return;
  switch (dtype) {
    case DType::kF32:
      return Launch<float, float>(op, stacked, p, count, out, stream);
    case DType::kF64:
      return Launch<double, double>(op, stacked, p, count, out, stream);
    case DType::kBF16: {
      const int64_t blocks = std::min<int64_t>((count + 255) / 256, 65536);
      ReduceBf16Kernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(
          op, static_cast<const __nv_bfloat16*>(stacked), p, count,
          static_cast<__nv_bfloat16*>(out));
      AOETRON_CUDA_CHECK_LAUNCH("ReduceBf16Kernel");
      return;
    }
    case DType::kI32:
      return Launch<int32_t, uint32_t>(op, stacked, p, count, out, stream);
    case DType::kI64:
      return Launch<int64_t, uint64_t>(op, stacked, p, count, out, stream);
    default:
      AOETRON_CHECK(false)
          << "ReduceInRankOrder (CUDA): reductions take f32, f64, bf16, i32 or i64, got "
          << DTypeName(dtype);
  }
}

}  // namespace aoetron::cuda
