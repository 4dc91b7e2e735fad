// CUDA kernels that reduce along rows: RMSNorm, row softmax, softmax cross-entropy.
//
// One block (RMSNorm, cross-entropy: rows of d or V elements) or one warp (softmax: rows of a few
// experts) per row; the reductions are BlockSum/WarpSum over a fixed thread layout, in f32 (the
// cross-entropy's normaliser in f64 across threads). RMSNorm's dweight, a sum over rows, goes
// through fixed chunks of rows and a second pass that adds the chunk partials in order.
#include <cmath>

#include "core/ops/cuda/kernel_util.cuh"
#include "core/ops/cuda/kernels.h"

namespace aoetron::ops::cuda {
namespace {

// ---- RMSNorm ------------------------------------------------------------------------------------

// Block per row:  rstd = 1 / sqrt(mean(x²) + eps),  y = x · rstd · w
template <typename T>
__global__ void RmsNormForwardKernel(const T* x, const T* weight, int64_t n, int64_t d, float eps,
                                     T* y, float* rstd) {
  __shared__ float scratch[32];
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const T* xr = x + row * d;
    T* yr = y + row * d;
    float sum_sq = 0.0f;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      const float v = ToFloat(xr[j]);
      sum_sq += v * v;
    }
    sum_sq = BlockSum(sum_sq, scratch);
    const float r = 1.0f / sqrtf(sum_sq / static_cast<float>(d) + eps);
    if (threadIdx.x == 0) rstd[row] = r;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      yr[j] = FromFloat<T>(ToFloat(xr[j]) * r * ToFloat(weight[j]));
    }
  }
}

// Block per row, with x̂ = x · rstd, g = dy ⊙ w:  dx += rstd · (g − x̂ · mean(g ⊙ x̂))
// (mean(g ⊙ x̂) = rstd · mean(dy ⊙ w ⊙ x)).
template <typename T>
__global__ void RmsNormBackwardRowsKernel(const T* dy, const T* x, const T* weight,
                                          const float* rstd, int64_t n, int64_t d, T* dx) {
  __shared__ float scratch[32];
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const T* xr = x + row * d;
    const T* dyr = dy + row * d;
    T* dxr = dx + row * d;
    const float r = rstd[row];
    float dot = 0.0f;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      dot += ToFloat(dyr[j]) * ToFloat(weight[j]) * ToFloat(xr[j]);
    }
    dot = BlockSum(dot, scratch);
    const float mean_gxhat = dot * r / static_cast<float>(d);
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      const float xhat = ToFloat(xr[j]) * r;
      const float g = ToFloat(dyr[j]) * ToFloat(weight[j]);
      dxr[j] = FromFloat<T>(ToFloat(dxr[j]) + r * (g - xhat * mean_gxhat));
    }
  }
}

constexpr int64_t kRowChunk = 64;

// partial[chunk, j] = Σ_{rows of chunk} dy[row, j] · x[row, j] · rstd[row]. Grid: x over column
// blocks, y over chunks (grid-stride).
template <typename T>
__global__ void RmsNormWeightPartialKernel(const T* dy, const T* x, const float* rstd, int64_t n,
                                           int64_t d, int64_t chunks, float* partial) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= d) return;
  for (int64_t chunk = blockIdx.y; chunk < chunks; chunk += gridDim.y) {
    const int64_t row_end = min(n, (chunk + 1) * kRowChunk);
    float sum = 0.0f;
    for (int64_t row = chunk * kRowChunk; row < row_end; ++row) {
      sum += ToFloat(dy[row * d + j]) * (ToFloat(x[row * d + j]) * rstd[row]);
    }
    partial[chunk * d + j] = sum;
  }
}

// dweight[j] += Σ_chunk partial[chunk, j], chunks in order.
template <typename T>
__global__ void RmsNormWeightSumKernel(const float* partial, int64_t chunks, int64_t d,
                                       T* dweight) {
  AOETRON_GRID_STRIDE_LOOP(j, d) {
    float sum = 0.0f;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) sum += partial[chunk * d + j];
    dweight[j] = FromFloat<T>(ToFloat(dweight[j]) + sum);
  }
}

// ---- Row softmax --------------------------------------------------------------------------------

constexpr int kWarpsPerBlock = kThreads / 32;

// Warp per row: y = e^(x − max) / Σ e^(x − max).
template <typename T>
__global__ void RowSoftmaxForwardKernel(const T* x, int64_t n, int64_t m, T* y) {
  const int lane = threadIdx.x % 32;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; row < n;
       row += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
    const T* xr = x + row * m;
    T* yr = y + row * m;
    float max = -INFINITY;
    for (int64_t j = lane; j < m; j += 32) max = fmaxf(max, ToFloat(xr[j]));
    max = WarpMax(max);
    float sum = 0.0f;
    for (int64_t j = lane; j < m; j += 32) sum += expf(ToFloat(xr[j]) - max);
    sum = WarpSum(sum);
    const float inv = 1.0f / sum;
    for (int64_t j = lane; j < m; j += 32) yr[j] = FromFloat<T>(expf(ToFloat(xr[j]) - max) * inv);
  }
}

// Warp per row: dx += y ⊙ (dy − Σ_j y_j dy_j).
template <typename T>
__global__ void RowSoftmaxBackwardKernel(const T* dy, const T* y, int64_t n, int64_t m, T* dx) {
  const int lane = threadIdx.x % 32;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; row < n;
       row += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
    const T* dyr = dy + row * m;
    const T* yr = y + row * m;
    T* dxr = dx + row * m;
    float dot = 0.0f;
    for (int64_t j = lane; j < m; j += 32) dot += ToFloat(yr[j]) * ToFloat(dyr[j]);
    dot = WarpSum(dot);
    for (int64_t j = lane; j < m; j += 32) {
      dxr[j] = FromFloat<T>(ToFloat(dxr[j]) + ToFloat(yr[j]) * (ToFloat(dyr[j]) - dot));
    }
  }
}

// ---- Cross-entropy ------------------------------------------------------------------------------

// Block per row, m = max_j x_j, Z = Σ_j e^(x_j − m):
//   loss = m + log Z − x_target                      (in f64, as on the CPU)
//   with_grad: x_j ← grad_scale · e^(x_j − m) / Z − grad_scale · [j = target]
// A negative target: loss 0 (and a zero gradient row). A target ≥ vocab: a device error, the row
// is left as it was.
template <typename T, bool kWithGrad>
__global__ void CrossEntropyKernel(T* logits, const int32_t* targets, int64_t n, int64_t vocab,
                                   double grad_scale, float* losses, DeviceErrorRecord* error) {
  __shared__ float max_scratch[32];
  __shared__ double sum_scratch[32];
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    T* x = logits + row * vocab;
    const int32_t target = targets[row];
    if (target >= vocab) {
      if (threadIdx.x == 0) RaiseDeviceError(error, DeviceErrorCode::kTargetOutOfRange, row);
      continue;
    }
    if (target < 0) {
      if (threadIdx.x == 0) losses[row] = 0.0f;
      if (kWithGrad) {
        for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) x[j] = FromFloat<T>(0.0f);
      }
      continue;
    }
    const float x_target = ToFloat(x[target]);  // read before any thread overwrites the row
    float max = -INFINITY;
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) max = fmaxf(max, ToFloat(x[j]));
    max = BlockMax(max, max_scratch);
    float partial = 0.0f;
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) partial += expf(ToFloat(x[j]) - max);
    const double z = BlockSum(static_cast<double>(partial), sum_scratch);  // synchronises
    if (threadIdx.x == 0) {
      losses[row] =
          static_cast<float>(static_cast<double>(max) + log(z) - static_cast<double>(x_target));
    }
    if (kWithGrad) {
      const float scale = static_cast<float>(grad_scale / z);
      const float g = static_cast<float>(grad_scale);
      for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
        const float p = expf(ToFloat(x[j]) - max) * scale;
        x[j] = FromFloat<T>(j == target ? p - g : p);
      }
    }
    __syncthreads();  // the next row's reductions reuse the scratch
  }
}

unsigned RowGrid(int64_t rows) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(rows, 1 << 20)));
}

}  // namespace

void RmsNormForward(int device, DType dtype, const void* x, const void* weight, int64_t n,
                    int64_t d, float eps, void* y, float* rstd) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "RmsNormForward", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    RmsNormForwardKernel<<<RowGrid(n), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(x), static_cast<const T*>(weight), n, d, eps, static_cast<T*>(y),
        rstd);
  });
  AOETRON_CUDA_CHECK_LAUNCH("RmsNormForwardKernel");
}

void RmsNormBackward(int device, DType dtype, const void* dy, const void* x, const void* weight,
                     const float* rstd, int64_t n, int64_t d, void* dx, void* dweight) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  const int64_t chunks = (n + kRowChunk - 1) / kRowChunk;
  DeviceScratch<float> partial(chunks * d);
  DispatchFloat(dtype, "RmsNormBackward", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    RmsNormBackwardRowsKernel<<<RowGrid(n), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<const T*>(weight), rstd, n,
        d, static_cast<T*>(dx));
    AOETRON_CUDA_CHECK_LAUNCH("RmsNormBackwardRowsKernel");
    const dim3 blocks(static_cast<unsigned>((d + kThreads - 1) / kThreads),
                      static_cast<unsigned>(std::min<int64_t>(chunks, 65535)));
    RmsNormWeightPartialKernel<<<blocks, kThreads, 0, context.stream()>>>(
        static_cast<const T*>(dy), static_cast<const T*>(x), rstd, n, d, chunks, partial.get());
    AOETRON_CUDA_CHECK_LAUNCH("RmsNormWeightPartialKernel");
    RmsNormWeightSumKernel<<<GridFor(d, context), kThreads, 0, context.stream()>>>(
        partial.get(), chunks, d, static_cast<T*>(dweight));
    AOETRON_CUDA_CHECK_LAUNCH("RmsNormWeightSumKernel");
  });
}

void RowSoftmaxForward(int device, DType dtype, const void* x, int64_t n, int64_t m, void* y) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "RowSoftmaxForward", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    RowSoftmaxForwardKernel<<<GridFor(n * 32, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(x), n, m, static_cast<T*>(y));
  });
  AOETRON_CUDA_CHECK_LAUNCH("RowSoftmaxForwardKernel");
}

void RowSoftmaxBackward(int device, DType dtype, const void* dy, const void* y, int64_t n,
                        int64_t m, void* dx) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "RowSoftmaxBackward", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    RowSoftmaxBackwardKernel<<<GridFor(n * 32, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(dy), static_cast<const T*>(y), n, m, static_cast<T*>(dx));
  });
  AOETRON_CUDA_CHECK_LAUNCH("RowSoftmaxBackwardKernel");
}

void CrossEntropyForward(int device, DType dtype, const void* logits, const int32_t* targets,
                         int64_t n, int64_t vocab, float* losses) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "CrossEntropyForward", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    // Without the gradient the kernel never writes the logits.
    CrossEntropyKernel<T, false><<<RowGrid(n), kThreads, 0, context.stream()>>>(
        const_cast<T*>(static_cast<const T*>(logits)), targets, n, vocab, 0.0, losses,
        context.error_record());
  });
  AOETRON_CUDA_CHECK_LAUNCH("CrossEntropyKernel");
}

void CrossEntropyForwardBackward(int device, DType dtype, void* logits, const int32_t* targets,
                                 int64_t n, int64_t vocab, double grad_scale, float* losses) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "CrossEntropyForwardBackward", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    CrossEntropyKernel<T, true><<<RowGrid(n), kThreads, 0, context.stream()>>>(
        static_cast<T*>(logits), targets, n, vocab, grad_scale, losses, context.error_record());
  });
  AOETRON_CUDA_CHECK_LAUNCH("CrossEntropyKernel");
}

}  // namespace aoetron::ops::cuda
