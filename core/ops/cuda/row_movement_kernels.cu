// Row moves of the all-to-all dispatcher (core/ops/row_movement.h) on the device:
//   CopyRows        dst[dst_rows[i]] = src[src_rows[i]]            (bytes; any dtype)
//   AddRows         dst[dst_rows[i]] += src[src_rows[i]]           (f32 / bf16: f32 arithmetic,
//                                                                   one rounding per element)
//   SegmentSumRows  dst[s] = Σ_{q ∈ [begin[s], begin[s+1])} src[src_rows[q]]   in q order, in f32,
//                                                                   rounded once
// A missing row index (null) means the identity. One block per moved row (grid-stride over rows),
// threads over its columns: every output element has one writer, no atomics, so the results are
// the CPU kernels' bits. An index outside its tensor is a device error (kRowIndexOutOfRange,
// detail: the flat index into the index tensor) and the row is skipped; the CPU dispatch checks
// that dst rows are distinct, which stays a precondition here.
#include "core/ops/cuda/kernel_util.cuh"
#include "core/ops/cuda/kernels.h"

namespace aoetron::ops::cuda {
namespace {

__device__ __forceinline__ bool RowOf(const int32_t* index, int64_t i, int64_t rows, int64_t* row,
                                      DeviceErrorRecord* error) {
  const int64_t r = index != nullptr ? index[i] : i;
  if (r < 0 || r >= rows) {
    RaiseDeviceError(error, DeviceErrorCode::kRowIndexOutOfRange, i);
    return false;
  }
  *row = r;
  return true;
}

// Row i's source and destination rows; false (and a device error) when either is out of range.
__device__ __forceinline__ bool RowPair(const int32_t* src_rows, int64_t src_count,
                                        const int32_t* dst_rows, int64_t dst_count, int64_t i,
                                        int64_t* from, int64_t* to, DeviceErrorRecord* error) {
  return RowOf(src_rows, i, src_count, from, error) && RowOf(dst_rows, i, dst_count, to, error);
}

template <typename W>
__global__ void CopyRowsKernel(const W* src, const int32_t* src_rows, int64_t src_count, W* dst,
                               const int32_t* dst_rows, int64_t dst_count, int64_t m, int64_t words,
                               DeviceErrorRecord* error) {
  for (int64_t i = blockIdx.x; i < m; i += gridDim.x) {
    int64_t from = 0, to = 0;
    if (!RowPair(src_rows, src_count, dst_rows, dst_count, i, &from, &to, error)) continue;
    for (int64_t j = threadIdx.x; j < words; j += blockDim.x) {
      dst[to * words + j] = src[from * words + j];
    }
  }
}

template <typename T>
__global__ void AddRowsKernel(const T* src, const int32_t* src_rows, int64_t src_count, T* dst,
                              const int32_t* dst_rows, int64_t dst_count, int64_t m, int64_t w,
                              DeviceErrorRecord* error) {
  for (int64_t i = blockIdx.x; i < m; i += gridDim.x) {
    int64_t from = 0, to = 0;
    if (!RowPair(src_rows, src_count, dst_rows, dst_count, i, &from, &to, error)) continue;
    for (int64_t j = threadIdx.x; j < w; j += blockDim.x) {
      dst[to * w + j] = FromFloat<T>(ToFloat(dst[to * w + j]) + ToFloat(src[from * w + j]));
    }
  }
}

// A segment that is empty, runs backwards or leaves [0, index_count) is a device error (the CPU
// CHECKs the same) and its row is left unwritten.
template <typename T>
__global__ void SegmentSumRowsKernel(const T* src, const int32_t* src_rows, int64_t src_count,
                                     int64_t index_count, const int64_t* begin, int64_t segments,
                                     T* dst, int64_t w, DeviceErrorRecord* error) {
  for (int64_t s = blockIdx.x; s < segments; s += gridDim.x) {
    const int64_t first = begin[s], end = begin[s + 1];
    if (first < 0 || end <= first || end > index_count) {
      if (threadIdx.x == 0) RaiseDeviceError(error, DeviceErrorCode::kRowIndexOutOfRange, s);
      continue;
    }
    for (int64_t j = threadIdx.x; j < w; j += blockDim.x) {
      float sum = 0.0f;
      bool started = false;
      for (int64_t q = first; q < end; ++q) {
        int64_t row = 0;
        if (!RowOf(src_rows, q, src_count, &row, error)) continue;
        const float v = ToFloat(src[row * w + j]);
        sum = started ? sum + v : v;  // the CPU starts from the first row, not from 0
        started = true;
      }
      dst[s * w + j] = FromFloat<T>(sum);
    }
  }
}

// One block per row, at most 65535 blocks (the loops stride over the rest).
unsigned RowGrid(int64_t rows) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(rows, 65535)));
}

}  // namespace

void CopyRows(int device, const void* src, const int32_t* src_rows, int64_t src_count, void* dst,
              const int32_t* dst_rows, int64_t dst_count, int64_t m, int64_t row_bytes) {
  if (m == 0 || row_bytes == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  const auto launch = [&](auto word) {
    using W = decltype(word);
    CopyRowsKernel<W><<<RowGrid(m), kThreads, 0, context.stream()>>>(
        static_cast<const W*>(src), src_rows, src_count, static_cast<W*>(dst), dst_rows, dst_count,
        m, row_bytes / static_cast<int64_t>(sizeof(W)), context.error_record());
  };
  const auto aligned = [&](size_t bytes) {
    return row_bytes % static_cast<int64_t>(bytes) == 0 &&
           reinterpret_cast<uintptr_t>(src) % bytes == 0 &&
           reinterpret_cast<uintptr_t>(dst) % bytes == 0;
  };
  if (aligned(4)) {
    launch(uint32_t{});
  } else if (aligned(2)) {
    launch(uint16_t{});
  } else {
    launch(uint8_t{});
  }
  AOETRON_CUDA_CHECK_LAUNCH("CopyRowsKernel");
}

void AddRows(int device, DType dtype, const void* src, const int32_t* src_rows, int64_t src_count,
             void* dst, const int32_t* dst_rows, int64_t dst_count, int64_t m, int64_t w) {
  if (m == 0 || w == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "AddRows", [&](auto tag) {
    using T = typename decltype(tag)::type;
    AddRowsKernel<T><<<RowGrid(m), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(src), src_rows, src_count, static_cast<T*>(dst), dst_rows, dst_count,
        m, w, context.error_record());
  });
  AOETRON_CUDA_CHECK_LAUNCH("AddRowsKernel");
}

void SegmentSumRows(int device, DType dtype, const void* src, const int32_t* src_rows,
                    int64_t src_count, int64_t index_count, const int64_t* begin, int64_t segments,
                    void* dst, int64_t w) {
  if (segments == 0 || w == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "SegmentSumRows", [&](auto tag) {
    using T = typename decltype(tag)::type;
    SegmentSumRowsKernel<T><<<RowGrid(segments), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(src), src_rows, src_count, index_count, begin, segments,
        static_cast<T*>(dst), w, context.error_record());
  });
  AOETRON_CUDA_CHECK_LAUNCH("SegmentSumRowsKernel");
}

}  // namespace aoetron::ops::cuda
