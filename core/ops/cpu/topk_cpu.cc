// Top-K per row (scores: [n, m], values/indices: [n, k]) with deterministic ties.
//
// Each row is scanned once, left to right, keeping the best k seen so far in descending order.
// A new score enters only if it is strictly greater than the current k-th, and it is placed after
// every kept score that is ≥ it. Columns arrive in increasing index, so among equal scores the
// lower index is always ahead — including for the last place: a later equal score never
// displaces it. m is the expert count (8–256) and k small, so this O(m·k) scan beats any sort.
//
// Backward: the selection is locally constant, so dscores[t, indices[t, j]] += dvalues[t, j].
#include <omp.h>

#include <cmath>

#include "core/check.h"
#include "core/ops/cpu/kernels.h"

namespace aoetron::ops::cpu {
namespace {

constexpr int64_t kParallelMinElements = int64_t{1} << 12;

}  // namespace

template <typename T>
void TopK(const T* scores, int64_t n, int64_t m, int64_t k, T* values, int32_t* indices) {
#pragma omp parallel for schedule(static) if (n * m >= kParallelMinElements)
  for (int64_t row = 0; row < n; ++row) {
    const T* s = scores + row * m;
    T* v = values + row * k;
    int32_t* idx = indices + row * k;
    int64_t kept = 0;
    for (int64_t col = 0; col < m; ++col) {
      const T score = s[col];
      AOETRON_CHECK(!std::isnan(score))
          << "TopK: scores[" << row << ", " << col << "] is NaN (the model has diverged)";
      if (kept == k && !(score > v[k - 1])) continue;
      // Insertion point: after every kept value ≥ score.
      int64_t pos = kept < k ? kept : k - 1;
      while (pos > 0 && v[pos - 1] < score) {
        v[pos] = v[pos - 1];
        idx[pos] = idx[pos - 1];
        --pos;
      }
      v[pos] = score;
      idx[pos] = static_cast<int32_t>(col);
      if (kept < k) ++kept;
    }
  }
}

template <typename T>
void TopKBackward(const T* dvalues, const int32_t* indices, int64_t n, int64_t m, int64_t k,
                  T* dscores) {
#pragma omp parallel for schedule(static) if (n * m >= kParallelMinElements)
  for (int64_t row = 0; row < n; ++row) {
    for (int64_t j = 0; j < k; ++j) dscores[row * m + indices[row * k + j]] += dvalues[row * k + j];
  }
}

template void TopK<float>(const float*, int64_t, int64_t, int64_t, float*, int32_t*);
template void TopK<double>(const double*, int64_t, int64_t, int64_t, double*, int32_t*);
template void TopKBackward<float>(const float*, const int32_t*, int64_t, int64_t, int64_t, float*);
template void TopKBackward<double>(const double*, const int32_t*, int64_t, int64_t, int64_t,
                                   double*);

}  // namespace aoetron::ops::cpu
