// Token embedding lookup.
//
//   forward:  out[t, :] = table[ids[t], :]
//   backward: dtable[ids[t], :] += dout[t, :]   for t = 0, 1, …, n−1 in that order
//
// Two tokens with the same id add into the same table row, so splitting the tokens across
// threads would need atomics or an order that depends on the thread count. Threads split the d
// columns instead: each column block sees every token in order, so the sums are the same bits
// whatever the number of threads.
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "core/ops/cpu/kernels.h"

namespace aoetron::ops::cpu {
namespace {

constexpr int64_t kParallelMinElements = int64_t{1} << 15;
// Columns per backward work item: 256 bytes of f32, enough to vectorise, and d = 768 still gives
// 12 items to share.
constexpr int64_t kColumnBlock = 64;

}  // namespace

template <typename T>
void EmbeddingForward(const int32_t* ids, int64_t n, const T* table, int64_t row_begin,
                      int64_t rows, int64_t d, T* out) {
#pragma omp parallel for schedule(static) if (n * d >= kParallelMinElements)
  for (int64_t t = 0; t < n; ++t) {
    const int64_t row = static_cast<int64_t>(ids[t]) - row_begin;
    if (row >= 0 && row < rows) {
      std::memcpy(out + t * d, table + row * d, sizeof(T) * d);
    } else {
      std::fill(out + t * d, out + (t + 1) * d, T(0));
    }
  }
}

template <typename T>
void EmbeddingBackward(const int32_t* ids, int64_t n, const T* dout, int64_t row_begin,
                       int64_t rows, int64_t d, T* dtable) {
  const int64_t blocks = (d + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static) if (n * d >= kParallelMinElements)
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t begin = block * kColumnBlock;
    const int64_t width = std::min(kColumnBlock, d - begin);
    for (int64_t t = 0; t < n; ++t) {
      const int64_t row = static_cast<int64_t>(ids[t]) - row_begin;
      if (row < 0 || row >= rows) continue;
      T* dst = dtable + row * d + begin;
      const T* src = dout + t * d + begin;
#pragma omp simd
      for (int64_t c = 0; c < width; ++c) dst[c] += src[c];
    }
  }
}

template void EmbeddingForward<float>(const int32_t*, int64_t, const float*, int64_t, int64_t,
                                      int64_t, float*);
template void EmbeddingForward<double>(const int32_t*, int64_t, const double*, int64_t, int64_t,
                                       int64_t, double*);
template void EmbeddingBackward<float>(const int32_t*, int64_t, const float*, int64_t, int64_t,
                                       int64_t, float*);
template void EmbeddingBackward<double>(const int32_t*, int64_t, const double*, int64_t, int64_t,
                                        int64_t, double*);

}  // namespace aoetron::ops::cpu
