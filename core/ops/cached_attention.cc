// CPU kernel inline (one (b, i, h) row per iteration); CUDA: core/ops/cuda/cached_attention.cu.
#include "core/ops/cached_attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/ops/cuda/kernels.h"
#include "core/ops/f32_staging.h"
#include "core/ops/float_visit.h"
#include "core/ops/op_checks.h"

namespace aoetron::ops {

using namespace internal;  // NOLINT: the op_checks helpers

void CachedCausalAttention(const Tensor& qkv_cache, int64_t first, int64_t count, Tensor& out) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "CachedCausalAttention";
  CheckOperands(kOp, {{"qkv_cache", &qkv_cache}, {"out", &out}});
  CheckFloat(kOp, "qkv_cache", qkv_cache);
  CheckRank(kOp, "qkv_cache", qkv_cache, 5);
  AOETRON_CHECK(qkv_cache.dim(2) == 3)
      << kOp << ": qkv_cache must be [B, T, 3, H, hd], got " << qkv_cache.DebugString();
  const int64_t batch = qkv_cache.dim(0), capacity = qkv_cache.dim(1), heads = qkv_cache.dim(3),
                head_dim = qkv_cache.dim(4);
  AOETRON_CHECK(first >= 0 && count >= 0 && first + count <= capacity)
      << kOp << ": rows [" << first << ", " << first + count << ") outside the cache of "
      << capacity;
  CheckDType(kOp, "out", out, qkv_cache.dtype());
  CheckShapeEq(kOp, "out", out, Shape({batch, count, heads, head_dim}));
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(qkv_cache)) {
    cuda::CachedCausalAttention(CudaOrdinal(qkv_cache), qkv_cache.dtype(), qkv_cache.raw_data(),
                                batch, capacity, heads, head_dim, first, count, out.raw_data());
    return;
  }
#endif
  if (qkv_cache.dtype() == DType::kBF16) {
    F32Staging f32;
    CachedCausalAttention(f32.In(qkv_cache), first, count, f32.Out(out));
    return;
  }
  DispatchFloat(qkv_cache.dtype(), [&]<typename T>() {
    const T* cache = qkv_cache.data<T>();
    T* o = out.data<T>();
    const T scale = T(1) / std::sqrt(static_cast<T>(head_dim));
    const int64_t token_stride = 3 * heads * head_dim;
    std::vector<T> scores(first + count);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t i = 0; i < count; ++i) {
        const int64_t t = first + i;
        for (int64_t h = 0; h < heads; ++h) {
          const T* q = cache + (b * capacity + t) * token_stride + h * head_dim;
          T top = -INFINITY;
          for (int64_t j = 0; j <= t; ++j) {
            const T* k = cache + (b * capacity + j) * token_stride + (heads + h) * head_dim;
            T dot = 0;
            for (int64_t c = 0; c < head_dim; ++c) dot += q[c] * k[c];
            scores[j] = dot * scale;
            top = std::max(top, scores[j]);
          }
          T sum = 0;
          for (int64_t j = 0; j <= t; ++j) {
            scores[j] = std::exp(scores[j] - top);
            sum += scores[j];
          }
          T* row = o + ((b * count + i) * heads + h) * head_dim;
          for (int64_t c = 0; c < head_dim; ++c) row[c] = 0;
          for (int64_t j = 0; j <= t; ++j) {
            const T* v = cache + (b * capacity + j) * token_stride + (2 * heads + h) * head_dim;
            const T weight = scores[j] / sum;
            for (int64_t c = 0; c < head_dim; ++c) row[c] += weight * v[c];
          }
        }
      }
    }
  });
}

}  // namespace aoetron::ops
