// Causal multi-head attention, forward and backward, one (batch, head) at a time per thread.
//
// Per (b, h), with Q, K, V, O, dO: [T, hd], s = 1/sqrt(hd), Q' = s·Q:
//   forward:   S = Q' Kᵀ (S[i, j] = −∞ for j > i),  lse_i = log Σ_j e^S[i,j],
//              P = e^(S − lse),  O = P V
//   backward:  P recomputed from Q', K and lse (nothing T×T is stored between the passes)
//              dP = dO Vᵀ,  dV = Pᵀ dO
//              D_i = Σ_c dO[i, c] O[i, c]  (= Σ_j P[i, j] dP[i, j], the softmax's row term)
//              dS = P ⊙ (dP − D),  dQ = s · dS K,  dK = dSᵀ Q'   (= s · dSᵀ Q)
//
// How the products run. Each thread owns whole (b, h) problems and runs their products with the
// register-tiled loop below (Tile): an R×W block of the output held in vector registers while k
// streams through, written with GCC/Clang vector extensions so the same code serves f32 (16
// lanes) and f64 (8 lanes). Chosen by measurement over calling ops::Gemm per head: inside an
// OpenMP region oneDNN's sgemm runs single-threaded, it cannot skip the masked half of Q Kᵀ,
// and at 256×256×64 its per-call packing is a large share of the work. On the 2-core dev VM
// (f32, B=8, T=256, H=4, hd=64, one thread): forward with two dnnl_sgemm per head 4.0 ms, this
// kernel 3.1 ms; forward + backward with 2 threads ≈ 5 ms (≈ 190 GFLOP/s of causal work).
//
// Every operand of a (b, h) is first copied into per-thread scratch, zero-padded to whole tiles:
// Q', K, dO row-major [Tp, hdp]; Kᵀ and Vᵀ [hdp, Tp] (so S and dP stream rows of Kᵀ, Vᵀ);
// the tile loops then need no edge cases, and padding contributes exact zeros. Rows are taken
// R at a time; a row block only computes the key columns up to its diagonal (rounded up to a
// tile), which is where the causal mask saves half the work.
//
// Each (b, h) is computed by one thread with the same code whatever the thread count, and the
// threads write disjoint slices of out, lse and dqkv: results are bitwise thread-independent.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/ops/cpu/kernels.h"
#include "core/ops/cpu/vec_math.h"

namespace aoetron::ops::cpu {
namespace {

// One 64-byte vector of T (an AVX-512 register; the compiler splits it where vectors are
// narrower).
template <typename T>
struct Simd;
template <>
struct Simd<float> {
  typedef float V __attribute__((vector_size(64)));
  static constexpr int kLanes = 16;
};
template <>
struct Simd<double> {
  typedef double V __attribute__((vector_size(64)));
  static constexpr int kLanes = 8;
};

// Tile shape: kRows output rows × kVecs vectors of output columns. 4×4 vectors = 16 accumulator
// registers, and per step of k: 4 broadcasts + 4 vector loads feed 16 FMAs.
constexpr int kRows = 4;
constexpr int kVecs = 4;
template <typename T>
constexpr int64_t TileCols() {
  return kVecs * Simd<T>::kLanes;
}
// Padding unit for the sequence: a multiple of the tile width for both f32 (64) and f64 (32)
// and of kRows.
constexpr int64_t kSeqAlign = 64;

int64_t RoundUp(int64_t x, int64_t unit) { return (x + unit - 1) / unit * unit; }

// C[r, c] = Σ_{k ∈ [k0, k1)} A(r, k) · B[k, c]   for r < kRows, c < kVecs·lanes, where
// A(r, k) = a[r·a_row + k·a_step] and B has row stride ldb. Strided A covers both A and Aᵀ.
template <typename T>
inline void Tile(int64_t k0, int64_t k1, const T* a, int64_t a_row, int64_t a_step, const T* b,
                 int64_t ldb, T* c, int64_t ldc) {
  using V = typename Simd<T>::V;
  constexpr int kLanes = Simd<T>::kLanes;
  V acc[kRows][kVecs];
#pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 16
    for (int v = 0; v < kVecs; ++v) acc[r][v] = V{};
  }
  for (int64_t k = k0; k < k1; ++k) {
    V bv[kVecs];
#pragma GCC unroll 16
    for (int v = 0; v < kVecs; ++v) std::memcpy(&bv[v], b + k * ldb + v * kLanes, sizeof(V));
#pragma GCC unroll 16
    for (int r = 0; r < kRows; ++r) {
      const V av = V{} + a[r * a_row + k * a_step];
#pragma GCC unroll 16
      for (int v = 0; v < kVecs; ++v) acc[r][v] += av * bv[v];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 16
    for (int v = 0; v < kVecs; ++v) {
      std::memcpy(c + r * ldc + v * kLanes, &acc[r][v], sizeof(V));
    }
  }
}

// Per-thread scratch: 64-byte aligned, uninitialised.
template <typename T>
struct AlignedBuffer {
  explicit AlignedBuffer(int64_t count)
      : data(static_cast<T*>(std::aligned_alloc(64, RoundUp(count * sizeof(T), 64)))) {}
  ~AlignedBuffer() { std::free(data); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  T* data;
};

// Where the vectors of (b, h) live in the packed tensors.
struct HeadLayout {
  int64_t seq, heads, head_dim;
  int64_t qkv_token_stride() const { return 3 * heads * head_dim; }
  int64_t out_token_stride() const { return heads * head_dim; }
  // Offset of q (part 0), k (1) or v (2) of token 0 of (b, h) in qkv.
  int64_t qkv_offset(int64_t b, int64_t h, int part) const {
    return (b * seq * 3 + part) * heads * head_dim + h * head_dim;
  }
  int64_t out_offset(int64_t b, int64_t h) const {
    return b * seq * heads * head_dim + h * head_dim;
  }
};

// dst[t, c] = scale · src[t·stride + c] for t < seq, c < hd; zero elsewhere in [rows, cols].
template <typename T>
void PackRows(const T* src, int64_t stride, int64_t seq, int64_t hd, T scale, T* dst, int64_t rows,
              int64_t cols) {
  for (int64_t t = 0; t < rows; ++t) {
    T* d = dst + t * cols;
    if (t < seq) {
      const T* s = src + t * stride;
      for (int64_t c = 0; c < hd; ++c) d[c] = scale * s[c];
      std::fill(d + hd, d + cols, T(0));
    } else {
      std::fill(d, d + cols, T(0));
    }
  }
}

// dst[c, t] = src[t·stride + c] (transposed) for t < seq, c < hd; zero elsewhere in
// [dim_pad, seq_pad].
// Done in 16×16 blocks: a plain loop that writes one column of dst per token touches hd cache
// lines per token and measured as a quarter of the backward's time; within a block both sides
// stay in L1.
template <typename T>
void PackTransposed(const T* src, int64_t stride, int64_t seq, int64_t hd, T* dst, int64_t seq_pad,
                    int64_t dim_pad) {
  constexpr int64_t kBlock = 16;
  std::fill(dst, dst + dim_pad * seq_pad, T(0));
  for (int64_t t0 = 0; t0 < seq; t0 += kBlock) {
    const int64_t t1 = std::min(seq, t0 + kBlock);
    for (int64_t c0 = 0; c0 < hd; c0 += kBlock) {
      const int64_t c1 = std::min(hd, c0 + kBlock);
      for (int64_t c = c0; c < c1; ++c) {
        for (int64_t t = t0; t < t1; ++t) dst[c * seq_pad + t] = src[t * stride + c];
      }
    }
  }
}

// Asks for the rows [row, row + count) of a strided tensor (row length `width` elements) to be
// brought into cache for writing. The dqkv rows a block adds into are 3·H·hd elements apart, so
// the hardware prefetcher does not see them coming; issued before a block's tile products, the
// loads overlap with the arithmetic instead of stalling the accumulation afterwards.
template <typename T>
void PrefetchRows(const T* base, int64_t stride, int64_t count, int64_t width) {
  constexpr int64_t kLine = 64 / sizeof(T);
  for (int64_t r = 0; r < count; ++r) {
    for (int64_t c = 0; c < width; c += kLine) __builtin_prefetch(base + r * stride + c, 1, 3);
  }
}

}  // namespace

template <typename T>
void CausalAttentionForward(const T* qkv, int64_t batch, int64_t seq, int64_t heads,
                            int64_t head_dim, T* out, T* lse) {
  const HeadLayout layout{seq, heads, head_dim};
  constexpr int64_t kCols = TileCols<T>();
  const int64_t tp = RoundUp(seq, kSeqAlign);
  const int64_t hdp = RoundUp(head_dim, kCols);
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(head_dim)));
#pragma omp parallel
  {
    AlignedBuffer<T> q(tp * hdp), kt(hdp * tp), v(tp * hdp), p(kRows * tp), o(kRows * hdp);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < batch * heads; ++bh) {
      const int64_t b = bh / heads, h = bh % heads;
      const int64_t stride = layout.qkv_token_stride();
      PackRows(qkv + layout.qkv_offset(b, h, 0), stride, seq, head_dim, scale, q.data, tp, hdp);
      PackTransposed(qkv + layout.qkv_offset(b, h, 1), stride, seq, head_dim, kt.data, tp, hdp);
      PackRows(qkv + layout.qkv_offset(b, h, 2), stride, seq, head_dim, T(1), v.data, tp, hdp);
      T* out_bh = out + layout.out_offset(b, h);
      T* lse_bh = lse + bh * seq;
      for (int64_t i0 = 0; i0 < seq; i0 += kRows) {
        const int64_t keys = std::min(i0 + kRows, seq);  // keys any row of the block may see
        const int64_t key_cols = RoundUp(keys, kCols);
        // S rows i0 … i0+kRows−1 = Q' Kᵀ over the key columns up to the diagonal.
        for (int64_t j0 = 0; j0 < key_cols; j0 += kCols) {
          Tile<T>(0, hdp, q.data + i0 * hdp, hdp, 1, kt.data + j0, tp, p.data + j0, tp);
        }
        // Masked softmax per row: P[i, j] = e^(S[i,j] − m) / Σ, zero for j > i.
        for (int r = 0; r < kRows; ++r) {
          const int64_t i = i0 + r;
          T* pr = p.data + r * tp;
          if (i >= seq) {  // padding row: contributes zeros to the tile product below
            std::fill(pr, pr + key_cols, T(0));
            continue;
          }
          T max = pr[0];
#pragma omp simd reduction(max : max)
          for (int64_t j = 0; j <= i; ++j) max = pr[j] > max ? pr[j] : max;  // vectorises
          T sum = 0;
#pragma omp simd reduction(+ : sum)
          for (int64_t j = 0; j <= i; ++j) {
            pr[j] = Exp<T>(pr[j] - max);
            sum += pr[j];
          }
          const T inv_sum = T(1) / sum;
#pragma omp simd
          for (int64_t j = 0; j <= i; ++j) pr[j] *= inv_sum;
          std::fill(pr + i + 1, pr + key_cols, T(0));
          lse_bh[i] = max + std::log(sum);
        }
        // O rows = P V over keys [0, keys).
        for (int64_t c0 = 0; c0 < hdp; c0 += kCols) {
          Tile<T>(0, keys, p.data, tp, 1, v.data + c0, hdp, o.data + c0, hdp);
        }
        for (int64_t i = i0; i < keys; ++i) {
          std::memcpy(out_bh + i * layout.out_token_stride(), o.data + (i - i0) * hdp,
                      sizeof(T) * head_dim);
        }
      }
    }
  }
}

template <typename T>
void CausalAttentionBackward(const T* dout, const T* qkv, const T* out, const T* lse, int64_t batch,
                             int64_t seq, int64_t heads, int64_t head_dim, T* dqkv) {
  const HeadLayout layout{seq, heads, head_dim};
  constexpr int64_t kCols = TileCols<T>();
  const int64_t tp = RoundUp(seq, kSeqAlign);
  const int64_t hdp = RoundUp(head_dim, kCols);
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(head_dim)));
#pragma omp parallel
  {
    AlignedBuffer<T> q(tp * hdp), k(tp * hdp), kt(hdp * tp), vt(hdp * tp), dout_rows(tp * hdp),
        p(tp * tp), ds(tp * tp), row_term(tp), grad(kRows * hdp);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < batch * heads; ++bh) {
      const int64_t b = bh / heads, h = bh % heads;
      const int64_t stride = layout.qkv_token_stride();
      const int64_t out_stride = layout.out_token_stride();
      PackRows(qkv + layout.qkv_offset(b, h, 0), stride, seq, head_dim, scale, q.data, tp, hdp);
      PackRows(qkv + layout.qkv_offset(b, h, 1), stride, seq, head_dim, T(1), k.data, tp, hdp);
      PackTransposed(k.data, hdp, seq, head_dim, kt.data, tp, hdp);  // from the cached copy
      PackTransposed(qkv + layout.qkv_offset(b, h, 2), stride, seq, head_dim, vt.data, tp, hdp);
      PackRows(dout + layout.out_offset(b, h), out_stride, seq, head_dim, T(1), dout_rows.data, tp,
               hdp);
      const T* out_bh = out + layout.out_offset(b, h);
      const T* lse_bh = lse + bh * seq;
      // D_i = ⟨dO_i, O_i⟩
      for (int64_t i = 0; i < seq; ++i) {
        const T* o = out_bh + i * out_stride;
        const T* d = dout_rows.data + i * hdp;
        T dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int64_t c = 0; c < head_dim; ++c) dot += d[c] * o[c];
        row_term.data[i] = dot;
      }
      T* dq_bh = dqkv + layout.qkv_offset(b, h, 0);
      for (int64_t i0 = 0; i0 < seq; i0 += kRows) {
        const int64_t keys = std::min(i0 + kRows, seq);
        const int64_t key_cols = RoundUp(keys, kCols);
        PrefetchRows(dq_bh + i0 * stride, stride, keys - i0, head_dim);
        T* p_rows = p.data + i0 * tp;
        T* ds_rows = ds.data + i0 * tp;
        // S → p rows, dP = dO Vᵀ → ds rows, over the key columns up to the diagonal.
        for (int64_t j0 = 0; j0 < key_cols; j0 += kCols) {
          Tile<T>(0, hdp, q.data + i0 * hdp, hdp, 1, kt.data + j0, tp, p_rows + j0, tp);
          Tile<T>(0, hdp, dout_rows.data + i0 * hdp, hdp, 1, vt.data + j0, tp, ds_rows + j0, tp);
        }
        // P = e^(S − lse), dS = P ⊙ (dP − D), both zero above the diagonal.
        for (int r = 0; r < kRows; ++r) {
          const int64_t i = i0 + r;
          T* pr = p_rows + r * tp;
          T* dsr = ds_rows + r * tp;
          if (i >= seq) {
            std::fill(pr, pr + key_cols, T(0));
            std::fill(dsr, dsr + key_cols, T(0));
            continue;
          }
          const T lse_i = lse_bh[i], d_i = row_term.data[i];
#pragma omp simd
          for (int64_t j = 0; j <= i; ++j) {
            const T pij = Exp<T>(pr[j] - lse_i);
            pr[j] = pij;
            dsr[j] = pij * (dsr[j] - d_i);
          }
          std::fill(pr + i + 1, pr + key_cols, T(0));
          std::fill(dsr + i + 1, dsr + key_cols, T(0));
        }
        // dQ rows = s · dS K over keys [0, keys), added into dqkv's q part.
        for (int64_t c0 = 0; c0 < hdp; c0 += kCols) {
          Tile<T>(0, keys, ds_rows, tp, 1, k.data + c0, hdp, grad.data + c0, hdp);
        }
        for (int64_t i = i0; i < keys; ++i) {
          T* dst = dq_bh + i * stride;
          const T* src = grad.data + (i - i0) * hdp;
#pragma omp simd
          for (int64_t c = 0; c < head_dim; ++c) dst[c] += scale * src[c];
        }
      }
      // dV = Pᵀ dO and dK = dSᵀ Q': row j of either sums over the queries i ≥ j. Row block j0
      // reads columns j0 … j0+kRows−1 of rows i ≥ j0, all inside the region written above.
      T* dk_bh = dqkv + layout.qkv_offset(b, h, 1);
      T* dv_bh = dqkv + layout.qkv_offset(b, h, 2);
      for (int64_t j0 = 0; j0 < seq; j0 += kRows) {
        const int64_t rows = std::min<int64_t>(kRows, seq - j0);
        PrefetchRows(dk_bh + j0 * stride, stride, rows, head_dim);
        PrefetchRows(dv_bh + j0 * stride, stride, rows, head_dim);
        for (int part = 1; part <= 2; ++part) {
          const T* a = (part == 1 ? ds.data : p.data) + j0;
          const T* b_rows = part == 1 ? q.data : dout_rows.data;
          for (int64_t c0 = 0; c0 < hdp; c0 += kCols) {
            Tile<T>(j0, seq, a, 1, tp, b_rows + c0, hdp, grad.data + c0, hdp);
          }
          T* dst_bh = part == 1 ? dk_bh : dv_bh;
          for (int64_t r = 0; r < rows; ++r) {
            T* dst = dst_bh + (j0 + r) * stride;
            const T* src = grad.data + r * hdp;
#pragma omp simd
            for (int64_t c = 0; c < head_dim; ++c) dst[c] += src[c];
          }
        }
      }
    }
  }
}

template void CausalAttentionForward<float>(const float*, int64_t, int64_t, int64_t, int64_t,
                                            float*, float*);
template void CausalAttentionForward<double>(const double*, int64_t, int64_t, int64_t, int64_t,
                                             double*, double*);
template void CausalAttentionBackward<float>(const float*, const float*, const float*, const float*,
                                             int64_t, int64_t, int64_t, int64_t, float*);
template void CausalAttentionBackward<double>(const double*, const double*, const double*,
                                              const double*, int64_t, int64_t, int64_t, int64_t,
                                              double*);

}  // namespace aoetron::ops::cpu
