// CUDA kernel of core/ops/cached_attention.h: one thread per (b, i, h) row walks the cached keys
// in order (two passes: max and sum, then the weighted values), f32 arithmetic, so a row's sums
// associate as on the CPU. Decoding is latency-bound (a handful of rows per step); this is the
// simple form, not a tiled one.
#include "core/ops/cuda/kernel_util.cuh"
#include "core/ops/cuda/kernels.h"

namespace aoetron::ops::cuda {
namespace {

constexpr int64_t kMaxHeadDim = 256;

template <typename T>
__global__ void CachedAttentionKernel(const T* cache, int64_t batch, int64_t capacity,
                                      int64_t heads, int64_t head_dim, int64_t first, int64_t count,
                                      T* out) {
  AOETRON_GRID_STRIDE_LOOP(row, batch * count * heads) {
    const int64_t h = row % heads, i = (row / heads) % count, b = row / (heads * count);
    const int64_t t = first + i, stride = 3 * heads * head_dim;
    const T* q = cache + (b * capacity + t) * stride + h * head_dim;
    const float scale = rsqrtf(static_cast<float>(head_dim));
    float top = -INFINITY;
    for (int64_t j = 0; j <= t; ++j) {
      const T* k = cache + (b * capacity + j) * stride + (heads + h) * head_dim;
      float dot = 0.0f;
      for (int64_t c = 0; c < head_dim; ++c) dot += ToFloat(q[c]) * ToFloat(k[c]);
      top = fmaxf(top, dot * scale);
    }
    float sum = 0.0f;
    float acc[kMaxHeadDim];
    for (int64_t c = 0; c < head_dim; ++c) acc[c] = 0.0f;
    for (int64_t j = 0; j <= t; ++j) {
      const T* k = cache + (b * capacity + j) * stride + (heads + h) * head_dim;
      const T* v = cache + (b * capacity + j) * stride + (2 * heads + h) * head_dim;
      float dot = 0.0f;
      for (int64_t c = 0; c < head_dim; ++c) dot += ToFloat(q[c]) * ToFloat(k[c]);
      const float weight = expf(dot * scale - top);
      sum += weight;
      for (int64_t c = 0; c < head_dim; ++c) acc[c] += weight * ToFloat(v[c]);
    }
    T* o = out + row * head_dim;
    for (int64_t c = 0; c < head_dim; ++c) o[c] = FromFloat<T>(acc[c] / sum);
  }
}

}  // namespace

void CachedCausalAttention(int device, DType dtype, const void* cache, int64_t batch,
                           int64_t capacity, int64_t heads, int64_t head_dim, int64_t first,
                           int64_t count, void* out) {
  const int64_t rows = batch * count * heads;
  if (rows == 0) return;
  AOETRON_CHECK(head_dim <= kMaxHeadDim)
      << "CachedCausalAttention: head dimension " << head_dim << " above " << kMaxHeadDim;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "CachedCausalAttention", [&](auto tag) {
    using T = typename decltype(tag)::type;
    CachedAttentionKernel<T><<<GridFor(rows, context, 64), 64, 0, context.stream()>>>(
        static_cast<const T*>(cache), batch, capacity, heads, head_dim, first, count,
        static_cast<T*>(out));
  });
  AOETRON_CUDA_CHECK_LAUNCH("CachedAttentionKernel");
}

}  // namespace aoetron::ops::cuda
