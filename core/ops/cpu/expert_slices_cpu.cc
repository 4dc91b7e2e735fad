// AoE's per-slot gate inputs (core/ops/expert_slices.h):
//   TakeExpertSlices:   slots[t, j·r : (j+1)·r] = c[t, e·r : (e+1)·r],  e = expert_index[t, j]
//     backward:         dc[t, (e − first)·r : …] += dslots[t, j·r : …]  for e in the block
//   ExpertSliceProduct: slots[t, j·r + i] = Σ_k x[t, k] · w[k, e·r + i]
// The gathers split tokens over threads (each output row belongs to one token; a token's j run
// in order). The product groups the pairs by expert (a counting sort, pair order inside an
// expert) and works on tiles of up to kTile pairs of one expert: each row of W_e = w[:, e·r : …]
// is loaded once per tile and multiplied into kTile accumulators, so W_e streams from cache once
// per tile instead of once per pair. Every output element is the sum over k in ascending order
// from zero, whatever the tiling or thread count.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/ops/cpu/kernels.h"

namespace aoetron::ops::cpu {
namespace {

constexpr int64_t kParallelMinElements = int64_t{1} << 14;
constexpr int64_t kTile = 8;

}  // namespace

template <typename T>
void TakeExpertSlices(const T* c, const int32_t* expert_index, int64_t n, int64_t k,
                      int64_t experts, int64_t r, T* slots) {
#pragma omp parallel for schedule(static) if (n * k * r >= kParallelMinElements)
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = expert_index[t * k + j];
      std::memcpy(slots + (t * k + j) * r, c + (t * experts + e) * r, sizeof(T) * r);
    }
  }
}

template <typename T>
void TakeExpertSlicesBackward(const T* dslots, const int32_t* expert_index, int64_t n, int64_t k,
                              int64_t first, int64_t block, int64_t r, T* dc) {
#pragma omp parallel for schedule(static) if (n * k * r >= kParallelMinElements)
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = expert_index[t * k + j] - first;
      if (e < 0 || e >= block) continue;
      const T* src = dslots + (t * k + j) * r;
      T* dst = dc + (t * block + e) * r;
#pragma omp simd
      for (int64_t i = 0; i < r; ++i) dst[i] += src[i];
    }
  }
}

template <typename T>
void ExpertSliceProduct(const T* x, const T* w, const int32_t* expert_index, int64_t n, int64_t k,
                        int64_t d, int64_t experts, int64_t r, T* slots) {
  const int64_t pairs = n * k, ld = experts * r;
  // Pairs grouped by expert, then cut into tiles of ≤ kTile pairs of one expert.
  std::vector<int64_t> begin(experts + 1, 0);
  for (int64_t p = 0; p < pairs; ++p) ++begin[expert_index[p] + 1];
  for (int64_t e = 0; e < experts; ++e) begin[e + 1] += begin[e];
  std::vector<int64_t> order(pairs), fill(begin.begin(), begin.end() - 1);
  for (int64_t p = 0; p < pairs; ++p) order[fill[expert_index[p]]++] = p;
  std::vector<int64_t> tiles;  // first pair (in `order`) of each tile
  for (int64_t e = 0; e < experts; ++e) {
    for (int64_t q = begin[e]; q < begin[e + 1]; q += kTile) tiles.push_back(q);
  }
  const int64_t tile_count = static_cast<int64_t>(tiles.size());
#pragma omp parallel if (pairs * d * r >= kParallelMinElements)
  {
    std::vector<T> acc(kTile * r);
#pragma omp for schedule(static)
    for (int64_t tile = 0; tile < tile_count; ++tile) {
      const int64_t q0 = tiles[tile];
      const int64_t e = expert_index[order[q0]];
      const int64_t m = std::min(kTile, begin[e + 1] - q0);
      const T* xs[kTile];
      for (int64_t q = 0; q < m; ++q) xs[q] = x + (order[q0 + q] / k) * d;
      std::fill(acc.begin(), acc.end(), T(0));
      for (int64_t kk = 0; kk < d; ++kk) {
        const T* wrow = w + kk * ld + e * r;
        for (int64_t q = 0; q < m; ++q) {
          const T a = xs[q][kk];
          T* out = acc.data() + q * r;
#pragma omp simd
          for (int64_t i = 0; i < r; ++i) out[i] += a * wrow[i];
        }
      }
      for (int64_t q = 0; q < m; ++q) {
        std::memcpy(slots + order[q0 + q] * r, acc.data() + q * r, sizeof(T) * r);
      }
    }
  }
}

#define AOETRON_INSTANTIATE(T)                                                                    \
  template void TakeExpertSlices<T>(const T*, const int32_t*, int64_t, int64_t, int64_t, int64_t, \
                                    T*);                                                          \
  template void TakeExpertSlicesBackward<T>(const T*, const int32_t*, int64_t, int64_t, int64_t,  \
                                            int64_t, int64_t, T*);                                \
  template void ExpertSliceProduct<T>(const T*, const T*, const int32_t*, int64_t, int64_t,       \
                                      int64_t, int64_t, int64_t, T*);
AOETRON_INSTANTIATE(float)
AOETRON_INSTANTIATE(double)
#undef AOETRON_INSTANTIATE

}  // namespace aoetron::ops::cpu
