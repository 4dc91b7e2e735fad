// CUDA kernels of AoE's blockwise scoring: the slot gathers and the per-pair product
// (core/ops/expert_slices.h), and the column-block moves (core/ops/column_block.h).
//
// Each output element is written by one thread, and every sum runs in one thread in a fixed
// order (over j for the slot backward, over k ascending for the product): no atomics, the CPU's
// order of additions.
//
// ExpertSliceProduct is the plain form: one block per pair, threads over the r columns, x[t, k]
// broadcast and W_e's row k read coalesced. It reads W_e once per pair (N·K·d·r elements, from
// L2 when Ŵ_down fits), which is fine at small d·r; a grouped form (pairs sorted by expert,
// a tile of pairs per W_e row load, as the CPU kernel does) is the next step if profiles ask.
#include "core/ops/cuda/kernel_util.cuh"
#include "core/ops/cuda/kernels.h"

namespace aoetron::ops::cuda {
namespace {

// slots[p·r + i] = c[(t·experts + e)·r + i], p = t·k + j; thread per (pair, i).
template <typename T>
__global__ void TakeExpertSlicesKernel(const T* c, const int32_t* expert_index, int64_t n,
                                       int64_t k, int64_t experts, int64_t r, T* slots,
                                       DeviceErrorRecord* error) {
  AOETRON_GRID_STRIDE_LOOP(i, n * k * r) {
    const int64_t p = i / r, col = i % r;
    const int64_t e = CheckedExpert(expert_index, p, experts, error);
    if (e < 0) continue;
    slots[i] = c[((p / k) * experts + e) * r + col];
  }
}

// dc[t, (e − first)·r + i] += dslots[t, j·r + i] for j in order; thread per (token, i).
template <typename T>
__global__ void TakeExpertSlicesBackwardKernel(const T* dslots, const int32_t* expert_index,
                                               int64_t n, int64_t k, int64_t experts, int64_t first,
                                               int64_t block, int64_t r, T* dc,
                                               DeviceErrorRecord* error) {
  AOETRON_GRID_STRIDE_LOOP(i, n * r) {
    const int64_t t = i / r, col = i % r;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = CheckedExpert(expert_index, t * k + j, experts, error) - first;
      if (e < 0 || e >= block) continue;
      T* dst = dc + (t * block + e) * r + col;
      *dst = FromFloat<T>(ToFloat(*dst) + ToFloat(dslots[(t * k + j) * r + col]));
    }
  }
}

// Block per pair p = t·k + j: slots[p·r + i] = Σ_k x[t, k] · w[k, e·r + i] in f32.
template <typename T>
__global__ void ExpertSliceProductKernel(const T* x, const T* w, const int32_t* expert_index,
                                         int64_t pairs, int64_t k, int64_t d, int64_t experts,
                                         int64_t r, T* slots, DeviceErrorRecord* error) {
  const int64_t ld = experts * r;
  for (int64_t p = blockIdx.x; p < pairs; p += gridDim.x) {
    const int32_t e = expert_index[p];
    if (e < 0 || e >= experts) {
      if (threadIdx.x == 0) RaiseDeviceError(error, DeviceErrorCode::kExpertIndexOutOfRange, p);
      continue;
    }
    const T* xt = x + (p / k) * d;
    const T* we = w + static_cast<int64_t>(e) * r;
    for (int64_t col = threadIdx.x; col < r; col += blockDim.x) {
      float acc = 0.0f;
      for (int64_t kk = 0; kk < d; ++kk) acc += ToFloat(xt[kk]) * ToFloat(we[kk * ld + col]);
      slots[p * r + col] = FromFloat<T>(acc);
    }
  }
}

template <typename T>
__global__ void AddColumnsKernel(const T* src, int64_t src_cols, int64_t src_col, T* dst,
                                 int64_t dst_cols, int64_t dst_col, int64_t rows, int64_t width) {
  AOETRON_GRID_STRIDE_LOOP(i, rows * width) {
    const int64_t row = i / width, col = i % width;
    T* o = dst + row * dst_cols + dst_col + col;
    *o = FromFloat<T>(ToFloat(*o) + ToFloat(src[row * src_cols + src_col + col]));
  }
}

}  // namespace

void TakeExpertSlices(int device, DType dtype, const void* c, const int32_t* expert_index,
                      int64_t n, int64_t k, int64_t experts, int64_t r, void* slots) {
  if (n * k * r == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "TakeExpertSlices", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    TakeExpertSlicesKernel<<<GridFor(n * k * r, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(c), expert_index, n, k, experts, r, static_cast<T*>(slots),
        context.error_record());
  });
  AOETRON_CUDA_CHECK_LAUNCH("TakeExpertSlicesKernel");
}

void TakeExpertSlicesBackward(int device, DType dtype, const void* dslots,
                              const int32_t* expert_index, int64_t n, int64_t k, int64_t experts,
                              int64_t first, int64_t block, int64_t r, void* dc) {
  if (n * r == 0 || block == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "TakeExpertSlicesBackward", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    TakeExpertSlicesBackwardKernel<<<GridFor(n * r, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(dslots), expert_index, n, k, experts, first, block, r,
        static_cast<T*>(dc), context.error_record());
  });
  AOETRON_CUDA_CHECK_LAUNCH("TakeExpertSlicesBackwardKernel");
}

void ExpertSliceProduct(int device, DType dtype, const void* x, const void* w,
                        const int32_t* expert_index, int64_t n, int64_t k, int64_t d,
                        int64_t experts, int64_t r, void* slots) {
  const int64_t pairs = n * k;
  if (pairs * r == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  const int threads = static_cast<int>(std::min<int64_t>(kThreads, (r + 31) / 32 * 32));
  const unsigned blocks = static_cast<unsigned>(
      std::min<int64_t>(pairs, static_cast<int64_t>(context.multiprocessors()) * 64));
  DispatchFloat(dtype, "ExpertSliceProduct", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    ExpertSliceProductKernel<<<blocks, threads, 0, context.stream()>>>(
        static_cast<const T*>(x), static_cast<const T*>(w), expert_index, pairs, k, d, experts, r,
        static_cast<T*>(slots), context.error_record());
  });
  AOETRON_CUDA_CHECK_LAUNCH("ExpertSliceProductKernel");
}

void CopyColumns(int device, const void* src, int64_t src_row_bytes, int64_t src_offset, void* dst,
                 int64_t dst_row_bytes, int64_t dst_offset, int64_t rows, int64_t block_bytes) {
  if (rows * block_bytes == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  CUDA_CHECK(cudaMemcpy2DAsync(static_cast<char*>(dst) + dst_offset, dst_row_bytes,
                               static_cast<const char*>(src) + src_offset, src_row_bytes,
                               block_bytes, rows, cudaMemcpyDeviceToDevice, context.stream()));
}

void AddColumns(int device, DType dtype, const void* src, int64_t src_cols, int64_t src_col,
                void* dst, int64_t dst_cols, int64_t dst_col, int64_t rows, int64_t width) {
  if (rows * width == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "AddColumns", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    AddColumnsKernel<<<GridFor(rows * width, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(src), src_cols, src_col, static_cast<T*>(dst), dst_cols, dst_col,
        rows, width);
  });
  AOETRON_CUDA_CHECK_LAUNCH("AddColumnsKernel");
}

}  // namespace aoetron::ops::cuda
