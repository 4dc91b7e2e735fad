// L2 norms of equal-width column groups (c: [n, G·w], norms: [n, G]) — AoE's expert scores.
//
//   forward:  p_g = ‖c_g‖₂ = sqrt(Σ_i c_{g,i}²), the sum in double
//   backward: ∂p_g/∂c_{g,i} = c_{g,i} / p_g, so dc_g += dp_g · c_g / p_g, and 0 when p_g = 0
//             (‖·‖ is not differentiable at 0; 0 is a valid subgradient and keeps training finite)
#include <omp.h>

#include <cmath>

#include "core/ops/cpu/kernels.h"

namespace aoetron::ops::cpu {
namespace {

constexpr int64_t kParallelMinElements = int64_t{1} << 14;

}  // namespace

template <typename T>
void GroupedL2Norm(const T* c, int64_t n, int64_t groups, int64_t width, T* norms) {
  const int64_t row_width = groups * width;
#pragma omp parallel for schedule(static) if (n * row_width >= kParallelMinElements)
  for (int64_t row = 0; row < n; ++row) {
    for (int64_t g = 0; g < groups; ++g) {
      const T* cg = c + row * row_width + g * width;
      double sum_sq = 0.0;
#pragma omp simd reduction(+ : sum_sq)
      for (int64_t i = 0; i < width; ++i) {
        const double v = static_cast<double>(cg[i]);
        sum_sq += v * v;
      }
      norms[row * groups + g] = static_cast<T>(std::sqrt(sum_sq));
    }
  }
}

template <typename T>
void GroupedL2NormBackward(const T* dnorms, const T* c, const T* norms, int64_t n, int64_t groups,
                           int64_t width, T* dc) {
  const int64_t row_width = groups * width;
#pragma omp parallel for schedule(static) if (n * row_width >= kParallelMinElements)
  for (int64_t row = 0; row < n; ++row) {
    for (int64_t g = 0; g < groups; ++g) {
      const T norm = norms[row * groups + g];
      if (norm == T(0)) continue;
      const T factor = dnorms[row * groups + g] / norm;
      const T* cg = c + row * row_width + g * width;
      T* dcg = dc + row * row_width + g * width;
#pragma omp simd
      for (int64_t i = 0; i < width; ++i) dcg[i] += factor * cg[i];
    }
  }
}

template void GroupedL2Norm<float>(const float*, int64_t, int64_t, int64_t, float*);
template void GroupedL2Norm<double>(const double*, int64_t, int64_t, int64_t, double*);
template void GroupedL2NormBackward<float>(const float*, const float*, const float*, int64_t,
                                           int64_t, int64_t, float*);
template void GroupedL2NormBackward<double>(const double*, const double*, const double*, int64_t,
                                            int64_t, int64_t, double*);

}  // namespace aoetron::ops::cpu
