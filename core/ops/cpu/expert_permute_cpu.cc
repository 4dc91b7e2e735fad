// Grouping (token, expert) pairs by expert, and the gathers and sums that move rows between the
// token order [n, ·] and the grouped order [n·k, ·].
//
// Layout (counting sort, stable by token):
//   counts[e]  = #{(t, j) : expert_index[t, j] = e}
//   offsets[e] = Σ_{e' < e} counts[e']
//   position[t, j] = offsets[e] + #{(t', j') before (t, j) in row-major order with expert e}
// position is a bijection from pairs onto [0, n·k), so in every kernel below each output row is
// written by exactly one (t, j): threads split the tokens, no atomics, and per-token sums run
// over j in order — deterministic for any thread count.
//
//   PermuteRows:        grouped[position[t, j]] = x[t]
//   PermuteRowsBackward:dx[t] += Σ_j dgrouped[position[t, j]]
//   GatherExpertSlices: grouped[position[t, j]] = c[t, e·r : (e+1)·r],  e = expert_index[t, j]
//     backward:         dc[t, e·r : (e+1)·r] += dgrouped[position[t, j]]
//   CombineRows:        y[t] = Σ_j w[t, j] · expert_out[position[t, j]]
//     backward:         d_expert_out[position[t, j]] += w[t, j] · dy[t]
//                       dw[t, j] += ⟨dy[t], expert_out[position[t, j]]⟩
#include <omp.h>

#include <cstring>
#include <vector>

#include "core/ops/cpu/kernels.h"

namespace aoetron::ops::cpu {
namespace {

constexpr int64_t kParallelMinElements = int64_t{1} << 14;

}  // namespace

void BuildExpertLayout(const int32_t* expert_index, int64_t pairs, int64_t experts,
                       const int64_t* keep_limit, int64_t* counts, int64_t* offsets,
                       int32_t* position) {
  // n·k is a few thousand pairs: one serial pass is microseconds, and serial is what makes the
  // order "by token index" trivially true.
  for (int64_t e = 0; e < experts; ++e) counts[e] = 0;
  std::vector<char> dropped(keep_limit != nullptr ? pairs : 0, 0);
  for (int64_t p = 0; p < pairs; ++p) {
    int64_t& count = counts[expert_index[p]];
    if (keep_limit == nullptr || count < keep_limit[expert_index[p]]) {
      ++count;
    } else {
      dropped[p] = 1;
    }
  }
  offsets[0] = 0;
  for (int64_t e = 0; e < experts; ++e) offsets[e + 1] = offsets[e] + counts[e];
  std::vector<int64_t> cursor(offsets, offsets + experts);
  int64_t dropped_cursor = offsets[experts];
  for (int64_t p = 0; p < pairs; ++p) {
    const bool keep = keep_limit == nullptr || !dropped[p];
    position[p] = static_cast<int32_t>(keep ? cursor[expert_index[p]]++ : dropped_cursor++);
  }
}

template <typename T>
void PermuteRows(const T* x, const int32_t* position, int64_t n, int64_t k, int64_t d, T* grouped) {
#pragma omp parallel for schedule(static) if (n * k * d >= kParallelMinElements)
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      std::memcpy(grouped + static_cast<int64_t>(position[t * k + j]) * d, x + t * d,
                  sizeof(T) * d);
    }
  }
}

template <typename T>
void PermuteRowsBackward(const T* dgrouped, const int32_t* position, int64_t n, int64_t k,
                         int64_t d, T* dx) {
#pragma omp parallel for schedule(static) if (n * k * d >= kParallelMinElements)
  for (int64_t t = 0; t < n; ++t) {
    T* dxt = dx + t * d;
    for (int64_t j = 0; j < k; ++j) {
      const T* src = dgrouped + static_cast<int64_t>(position[t * k + j]) * d;
#pragma omp simd
      for (int64_t i = 0; i < d; ++i) dxt[i] += src[i];
    }
  }
}

template <typename T>
void GatherExpertSlices(const T* c, const int32_t* expert_index, const int32_t* position, int64_t n,
                        int64_t k, int64_t experts, int64_t r, T* grouped) {
#pragma omp parallel for schedule(static) if (n * k * r >= kParallelMinElements)
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = expert_index[t * k + j];
      std::memcpy(grouped + static_cast<int64_t>(position[t * k + j]) * r,
                  c + (t * experts + e) * r, sizeof(T) * r);
    }
  }
}

template <typename T>
void GatherExpertSlicesBackward(const T* dgrouped, const int32_t* expert_index,
                                const int32_t* position, int64_t n, int64_t k, int64_t experts,
                                int64_t r, T* dc) {
#pragma omp parallel for schedule(static) if (n * k * r >= kParallelMinElements)
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = expert_index[t * k + j];
      const T* src = dgrouped + static_cast<int64_t>(position[t * k + j]) * r;
      T* dst = dc + (t * experts + e) * r;
#pragma omp simd
      for (int64_t i = 0; i < r; ++i) dst[i] += src[i];
    }
  }
}

template <typename T>
void CombineRows(const T* expert_out, const int32_t* position, const T* weights, int64_t n,
                 int64_t k, int64_t d, T* y) {
#pragma omp parallel for schedule(static) if (n * k * d >= kParallelMinElements)
  for (int64_t t = 0; t < n; ++t) {
    T* yt = y + t * d;
    for (int64_t j = 0; j < k; ++j) {
      const T w = weights[t * k + j];
      const T* src = expert_out + static_cast<int64_t>(position[t * k + j]) * d;
      if (j == 0) {
#pragma omp simd
        for (int64_t i = 0; i < d; ++i) yt[i] = w * src[i];
      } else {
#pragma omp simd
        for (int64_t i = 0; i < d; ++i) yt[i] += w * src[i];
      }
    }
  }
}

template <typename T>
void CombineRowsBackward(const T* dy, const T* expert_out, const int32_t* position,
                         const T* weights, int64_t n, int64_t k, int64_t d, T* d_expert_out,
                         T* dweights) {
#pragma omp parallel for schedule(static) if (n * k * d >= kParallelMinElements)
  for (int64_t t = 0; t < n; ++t) {
    const T* dyt = dy + t * d;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t row = position[t * k + j];
      const T w = weights[t * k + j];
      const T* out = expert_out + row * d;
      T* dout = d_expert_out + row * d;
      T dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int64_t i = 0; i < d; ++i) {
        dot += dyt[i] * out[i];
        dout[i] += w * dyt[i];
      }
      dweights[t * k + j] += dot;
    }
  }
}

#define AOETRON_INSTANTIATE(T)                                                                     \
  template void PermuteRows<T>(const T*, const int32_t*, int64_t, int64_t, int64_t, T*);           \
  template void PermuteRowsBackward<T>(const T*, const int32_t*, int64_t, int64_t, int64_t, T*);   \
  template void GatherExpertSlices<T>(const T*, const int32_t*, const int32_t*, int64_t, int64_t,  \
                                      int64_t, int64_t, T*);                                       \
  template void GatherExpertSlicesBackward<T>(const T*, const int32_t*, const int32_t*, int64_t,   \
                                              int64_t, int64_t, int64_t, T*);                      \
  template void CombineRows<T>(const T*, const int32_t*, const T*, int64_t, int64_t, int64_t, T*); \
  template void CombineRowsBackward<T>(const T*, const T*, const int32_t*, const T*, int64_t,      \
                                       int64_t, int64_t, T*, T*);
AOETRON_INSTANTIATE(float)
AOETRON_INSTANTIATE(double)
#undef AOETRON_INSTANTIATE

}  // namespace aoetron::ops::cpu
