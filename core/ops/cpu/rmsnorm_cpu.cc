// RMSNorm, forward and backward (x: [n, d], weight: [d]).
//
// forward, per row:
//   rstd = 1 / sqrt(mean(x²) + eps),   x̂ = x · rstd,   y = x̂ ⊙ w
// backward, per row, with g = dy ⊙ w:
//   ∂L/∂x̂ = g;  x̂ depends on x directly and through rstd: ∂rstd/∂x_j = −rstd³ · x_j / d, so
//   dx = rstd · g − x · rstd³ · mean(g ⊙ x) = rstd · (g − x̂ · mean(g ⊙ x̂))
//   dw = Σ_rows dy ⊙ x̂
//
// dx is per row. dw is a sum over rows: rows are grouped into fixed chunks of kRowChunk, each chunk
// sums into its own partial row, and the partials are added in chunk order — the same bits for
// any number of threads.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/ops/cpu/kernels.h"

namespace aoetron::ops::cpu {
namespace {

constexpr int64_t kParallelMinElements = int64_t{1} << 15;
constexpr int64_t kRowChunk = 32;

}  // namespace

template <typename T>
void RmsNormForward(const T* x, const T* weight, int64_t n, int64_t d, T eps, T* y, T* rstd) {
#pragma omp parallel for schedule(static) if (n * d >= kParallelMinElements)
  for (int64_t row = 0; row < n; ++row) {
    const T* xr = x + row * d;
    T* yr = y + row * d;
    T sum_sq = 0;
#pragma omp simd reduction(+ : sum_sq)
    for (int64_t j = 0; j < d; ++j) sum_sq += xr[j] * xr[j];
    const T r = T(1) / std::sqrt(sum_sq / static_cast<T>(d) + eps);
    rstd[row] = r;
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) yr[j] = xr[j] * r * weight[j];
  }
}

template <typename T>
void RmsNormBackward(const T* dy, const T* x, const T* weight, const T* rstd, int64_t n, int64_t d,
                     T* dx, T* dweight) {
  const int64_t chunks = (n + kRowChunk - 1) / kRowChunk;
  std::vector<T> partial(chunks * d);
  const bool parallel = n * d >= kParallelMinElements;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    T* dw_partial = partial.data() + chunk * d;
    std::fill(dw_partial, dw_partial + d, T(0));
    const int64_t row_end = std::min(n, (chunk + 1) * kRowChunk);
    for (int64_t row = chunk * kRowChunk; row < row_end; ++row) {
      const T* xr = x + row * d;
      const T* dyr = dy + row * d;
      T* dxr = dx + row * d;
      const T r = rstd[row];
      // mean(g ⊙ x̂) = rstd · mean(dy ⊙ w ⊙ x)
      T dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < d; ++j) dot += dyr[j] * weight[j] * xr[j];
      const T mean_gxhat = dot * r / static_cast<T>(d);
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) {
        const T xhat = xr[j] * r;
        dxr[j] += r * (dyr[j] * weight[j] - xhat * mean_gxhat);
        dw_partial[j] += dyr[j] * xhat;
      }
    }
  }
  // dweight += Σ_chunk partial[chunk] in chunk order; columns are independent, so they split.
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t j = 0; j < d; ++j) {
    T sum = 0;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) sum += partial[chunk * d + j];
    dweight[j] += sum;
  }
}

template void RmsNormForward<float>(const float*, const float*, int64_t, int64_t, float, float*,
                                    float*);
template void RmsNormForward<double>(const double*, const double*, int64_t, int64_t, double,
                                     double*, double*);
template void RmsNormBackward<float>(const float*, const float*, const float*, const float*,
                                     int64_t, int64_t, float*, float*);
template void RmsNormBackward<double>(const double*, const double*, const double*, const double*,
                                      int64_t, int64_t, double*, double*);

}  // namespace aoetron::ops::cpu
