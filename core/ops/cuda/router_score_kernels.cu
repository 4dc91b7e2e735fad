// CUDA kernels of core/ops/router_scores.h. Element-wise kernels are grid-stride loops; the row
// kernels give each row (token) one thread that walks its m columns left to right, as the CPU
// does, so a row's sums associate in the same order on both backends. Every kernel loads T,
// computes in f32 and rounds once when it stores T (kernel_util.cuh).
#include "core/ops/cuda/kernel_util.cuh"
#include "core/ops/cuda/kernels.h"

namespace aoetron::ops::cuda {
namespace {

template <typename T>
__global__ void SigmoidKernel(const T* x, int64_t n, T* y) {
  AOETRON_GRID_STRIDE_LOOP(i, n) { y[i] = FromFloat<T>(1.0f / (1.0f + expf(-ToFloat(x[i])))); }
}

template <typename T>
__global__ void SigmoidBackwardKernel(const T* dy, const T* y, int64_t n, T* dx) {
  AOETRON_GRID_STRIDE_LOOP(i, n) {
    const float s = ToFloat(y[i]);
    dx[i] = FromFloat<T>(ToFloat(dx[i]) + ToFloat(dy[i]) * s * (1.0f - s));
  }
}

template <typename T>
__global__ void RowNormalizeKernel(const T* x, int64_t rows, int64_t m, T* y) {
  AOETRON_GRID_STRIDE_LOOP(t, rows) {
    const T* in = x + t * m;
    float sum = 0.0f;
    for (int64_t i = 0; i < m; ++i) sum += ToFloat(in[i]);
    for (int64_t i = 0; i < m; ++i) y[t * m + i] = FromFloat<T>(ToFloat(in[i]) / sum);
  }
}

template <typename T>
__global__ void RowNormalizeBackwardKernel(const T* dy, const T* y, const T* x, int64_t rows,
                                           int64_t m, T* dx) {
  AOETRON_GRID_STRIDE_LOOP(t, rows) {
    float sum = 0.0f, dot = 0.0f;
    for (int64_t i = 0; i < m; ++i) sum += ToFloat(x[t * m + i]);
    for (int64_t i = 0; i < m; ++i) dot += ToFloat(dy[t * m + i]) * ToFloat(y[t * m + i]);
    for (int64_t i = 0; i < m; ++i) {
      const int64_t p = t * m + i;
      dx[p] = FromFloat<T>(ToFloat(dx[p]) + (ToFloat(dy[p]) - dot) / sum);
    }
  }
}

template <typename T>
__global__ void RowLogSumExpKernel(const T* x, int64_t rows, int64_t m, T* lse) {
  AOETRON_GRID_STRIDE_LOOP(t, rows) {
    const T* in = x + t * m;
    float top = ToFloat(in[0]);
    for (int64_t i = 1; i < m; ++i) top = fmaxf(top, ToFloat(in[i]));
    float sum = 0.0f;
    for (int64_t i = 0; i < m; ++i) sum += expf(ToFloat(in[i]) - top);
    lse[t] = FromFloat<T>(top + logf(sum));
  }
}

template <typename T>
__global__ void LogSumExpSquareBackwardKernel(const T* x, const T* lse, float scale, int64_t rows,
                                              int64_t m, T* dx) {
  AOETRON_GRID_STRIDE_LOOP(p, rows * m) {
    const float l = ToFloat(lse[p / m]);
    dx[p] = FromFloat<T>(ToFloat(dx[p]) + scale * 2.0f * l * expf(ToFloat(x[p]) - l));
  }
}

}  // namespace

void Sigmoid(int device, DType dtype, const void* x, int64_t n, void* y) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "Sigmoid", [&](auto tag) {
    using T = typename decltype(tag)::type;
    SigmoidKernel<T><<<GridFor(n, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(x), n, static_cast<T*>(y));
  });
  AOETRON_CUDA_CHECK_LAUNCH("SigmoidKernel");
}

void SigmoidBackward(int device, DType dtype, const void* dy, const void* y, int64_t n, void* dx) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "SigmoidBackward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    SigmoidBackwardKernel<T><<<GridFor(n, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(dy), static_cast<const T*>(y), n, static_cast<T*>(dx));
  });
  AOETRON_CUDA_CHECK_LAUNCH("SigmoidBackwardKernel");
}

void RowNormalize(int device, DType dtype, const void* x, int64_t rows, int64_t m, void* y) {
  if (rows == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "RowNormalize", [&](auto tag) {
    using T = typename decltype(tag)::type;
    RowNormalizeKernel<T><<<GridFor(rows, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(x), rows, m, static_cast<T*>(y));
  });
  AOETRON_CUDA_CHECK_LAUNCH("RowNormalizeKernel");
}

void RowNormalizeBackward(int device, DType dtype, const void* dy, const void* y, const void* x,
                          int64_t rows, int64_t m, void* dx) {
  if (rows == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "RowNormalizeBackward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    RowNormalizeBackwardKernel<T><<<GridFor(rows, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(dy), static_cast<const T*>(y), static_cast<const T*>(x), rows, m,
        static_cast<T*>(dx));
  });
  AOETRON_CUDA_CHECK_LAUNCH("RowNormalizeBackwardKernel");
}

void RowLogSumExp(int device, DType dtype, const void* x, int64_t rows, int64_t m, void* lse) {
  if (rows == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "RowLogSumExp", [&](auto tag) {
    using T = typename decltype(tag)::type;
    RowLogSumExpKernel<T><<<GridFor(rows, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(x), rows, m, static_cast<T*>(lse));
  });
  AOETRON_CUDA_CHECK_LAUNCH("RowLogSumExpKernel");
}

void LogSumExpSquareBackward(int device, DType dtype, const void* x, const void* lse, double scale,
                             int64_t rows, int64_t m, void* dx) {
  if (rows * m == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "LogSumExpSquareBackward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    LogSumExpSquareBackwardKernel<T><<<GridFor(rows * m, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(x), static_cast<const T*>(lse), static_cast<float>(scale), rows, m,
        static_cast<T*>(dx));
  });
  AOETRON_CUDA_CHECK_LAUNCH("LogSumExpSquareBackwardKernel");
}

}  // namespace aoetron::ops::cuda
