// Row-wise softmax (x, y: [n, m]).
//
//   forward:  y_j = e^(x_j − max x) / Σ_k e^(x_k − max x)     (max-subtracted: no overflow)
//   backward: ∂y_i/∂x_j = y_i (δ_ij − y_j), so dx_j = Σ_i dy_i y_i (δ_ij − y_j)
//             = y_j (dy_j − Σ_i y_i dy_i)
#include <omp.h>

#include "core/ops/cpu/kernels.h"
#include "core/ops/cpu/vec_math.h"

namespace aoetron::ops::cpu {
namespace {

constexpr int64_t kParallelMinElements = int64_t{1} << 14;

}  // namespace

template <typename T>
void RowSoftmaxForward(const T* x, int64_t n, int64_t m, T* y) {
#pragma omp parallel for schedule(static) if (n * m >= kParallelMinElements)
  for (int64_t row = 0; row < n; ++row) {
    const T* xr = x + row * m;
    T* yr = y + row * m;
    T max = xr[0];
#pragma omp simd reduction(max : max)
    for (int64_t j = 1; j < m; ++j) max = xr[j] > max ? xr[j] : max;
    T sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < m; ++j) {
      yr[j] = Exp<T>(xr[j] - max);
      sum += yr[j];
    }
    const T inv = T(1) / sum;
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) yr[j] *= inv;
  }
}

template <typename T>
void RowSoftmaxBackward(const T* dy, const T* y, int64_t n, int64_t m, T* dx) {
#pragma omp parallel for schedule(static) if (n * m >= kParallelMinElements)
  for (int64_t row = 0; row < n; ++row) {
    const T* dyr = dy + row * m;
    const T* yr = y + row * m;
    T* dxr = dx + row * m;
    T dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < m; ++j) dot += yr[j] * dyr[j];
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) dxr[j] += yr[j] * (dyr[j] - dot);
  }
}

template void RowSoftmaxForward<float>(const float*, int64_t, int64_t, float*);
template void RowSoftmaxForward<double>(const double*, int64_t, int64_t, double*);
template void RowSoftmaxBackward<float>(const float*, const float*, int64_t, int64_t, float*);
template void RowSoftmaxBackward<double>(const double*, const double*, int64_t, int64_t, double*);

}  // namespace aoetron::ops::cpu
