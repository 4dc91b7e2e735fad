// The causal attention kernels of attention_cpu.cc, compiled once per ISA: included with
// AOETRON_CPU_ISA defined (core/ops/cpu/isa_variants.h). No include guard, on purpose.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/ops/cpu/isa_variants.h"
#include "core/ops/cpu/vec_math.h"

namespace aoetron::ops::cpu::AOETRON_CPU_ISA {
namespace {

// One vector register of T: 64 bytes with AVX-512, 32 with AVX2.
constexpr int kVectorBytes = AOETRON_CPU_VECTOR_BYTES;
template <typename T>
struct Simd {
  typedef T V __attribute__((vector_size(kVectorBytes)));
  static constexpr int kLanes = kVectorBytes / sizeof(T);
};

// Tile shape: kRows output rows × kVecs vectors of output columns, its accumulators in registers.
// AVX-512 (32 registers): 4×4 = 16 accumulators; per step of k, 4 broadcasts + 4 vector loads
// feed 16 FMAs (8×2 was tried: same FMAs per load, half the B traffic, and measured 5–10%
// slower at T = 256 and 2048). AVX2 (16 registers): 8×1 = 8 accumulators, enough to cover the
// FMA latency at two FMAs a cycle, 1 load + 8 broadcasts per 8 FMAs, 10 registers live (4×4
// would spill; 4×2 measured slower in the forward).
constexpr int kRows = kVectorBytes == 64 ? 4 : 8;
constexpr int kVecs = kVectorBytes == 64 ? 4 : 1;
template <typename T>
constexpr int64_t TileCols() {
  return kVecs * Simd<T>::kLanes;
}
// Padding unit for the sequence: a multiple of the tile width for f32 and f64 on either ISA
// (64, 32, 32, 16) and of kRows.
constexpr int64_t kSeqAlign = 64;

int64_t RoundUp(int64_t x, int64_t unit) { return (x + unit - 1) / unit * unit; }

// C[r, c] = Σ_{k ∈ [k0, k1)} A(r, k) · B[k, c]   for r < kRows, c < kVecs·lanes, where
// A(r, k) = a[r·a_row + k·a_step] and B has row stride ldb. Strided A covers both A and Aᵀ.
// With kAccumulate the block is added into C (C += ...), else C is overwritten.
template <typename T, bool kAccumulate = false>
inline void Tile(int64_t k0, int64_t k1, const T* a, int64_t a_row, int64_t a_step, const T* b,
                 int64_t ldb, T* c, int64_t ldc) {
  using V = typename Simd<T>::V;
  constexpr int kLanes = Simd<T>::kLanes;
  V acc[kRows][kVecs];
#pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 16
    for (int v = 0; v < kVecs; ++v) {
      if constexpr (kAccumulate) {
        std::memcpy(&acc[r][v], c + r * ldc + v * kLanes, sizeof(V));
      } else {
        acc[r][v] = V{};
      }
    }
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
    T inv_sum[kRows];
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
        // Masked softmax per row, left unnormalised: P̃[i, j] = e^(S[i,j] − m), zero for j > i;
        // the output row is divided by Σ_j P̃[i, j] once, after the product (O = P̃ V / Σ), which
        // saves a pass over the row.
        for (int r = 0; r < kRows; ++r) {
          const int64_t i = i0 + r;
          T* pr = p.data + r * tp;
          if (i >= seq) {  // padding row: contributes zeros to the tile product below
            std::fill(pr, pr + key_cols, T(0));
            inv_sum[r] = T(0);
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
          inv_sum[r] = T(1) / sum;
          std::fill(pr + i + 1, pr + key_cols, T(0));
          lse_bh[i] = max + std::log(sum);
        }
        // O rows = P̃ V over keys [0, keys), then each row times 1/Σ.
        for (int64_t c0 = 0; c0 < hdp; c0 += kCols) {
          Tile<T>(0, keys, p.data, tp, 1, v.data + c0, hdp, o.data + c0, hdp);
        }
        for (int64_t i = i0; i < keys; ++i) {
          T* dst = out_bh + i * layout.out_token_stride();
          const T* src = o.data + (i - i0) * hdp;
          const T scale_row = inv_sum[i - i0];
#pragma omp simd
          for (int64_t c = 0; c < head_dim; ++c) dst[c] = src[c] * scale_row;
        }
      }
    }
  }
}

// The backward in key blocks (as FlashAttention-2 does): for each block of kBlock keys, the
// query blocks at or below the diagonal recompute their kBlock × kBlock block of S and dP, turn
// them into P and dS, and add Pᵀ dO and dSᵀ Q' into the key block's dV and dK (kept in scratch
// until the key block is done) and dS K into the dQ scratch of the whole head. Every product is a
// kBlock-deep tile product on operands that stay in L1/L2; nothing T×T exists (the version this
// replaced kept P and dS for all T×T pairs and read them back column by column, from DRAM at
// T = 2048).
template <typename T>
void CausalAttentionBackward(const T* dout, const T* qkv, const T* out, const T* lse, int64_t batch,
                             int64_t seq, int64_t heads, int64_t head_dim, T* dqkv) {
  const HeadLayout layout{seq, heads, head_dim};
  constexpr int64_t kCols = TileCols<T>();
  constexpr int64_t kBlock = kSeqAlign;  // a multiple of kRows and kCols
  const int64_t tp = RoundUp(seq, kSeqAlign);
  const int64_t hdp = RoundUp(head_dim, kCols);
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(head_dim)));
#pragma omp parallel
  {
    AlignedBuffer<T> q(tp * hdp), k(tp * hdp), kt(hdp * tp), vt(hdp * tp), dout_rows(tp * hdp),
        dq(tp * hdp), dk(kBlock * hdp), dv(kBlock * hdp), p(kBlock * kBlock), ds(kBlock * kBlock),
        row_term(tp);
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
      std::fill(dq.data, dq.data + tp * hdp, T(0));
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
      for (int64_t j0 = 0; j0 < seq; j0 += kBlock) {
        std::fill(dk.data, dk.data + kBlock * hdp, T(0));
        std::fill(dv.data, dv.data + kBlock * hdp, T(0));
        for (int64_t i0 = j0; i0 < seq; i0 += kBlock) {
          // S = Q' Kᵀ → p, dP = dO Vᵀ → ds, for queries i0 + r and keys j0 + c.
          for (int64_t r0 = 0; r0 < kBlock; r0 += kRows) {
            for (int64_t c0 = 0; c0 < kBlock; c0 += kCols) {
              Tile<T, false>(0, hdp, q.data + (i0 + r0) * hdp, hdp, 1, kt.data + j0 + c0, tp,
                             p.data + r0 * kBlock + c0, kBlock);
              Tile<T, false>(0, hdp, dout_rows.data + (i0 + r0) * hdp, hdp, 1, vt.data + j0 + c0,
                             tp, ds.data + r0 * kBlock + c0, kBlock);
            }
          }
          // P = e^(S − lse), dS = P ⊙ (dP − D); zero where j > i or past the sequence.
          for (int64_t r = 0; r < kBlock; ++r) {
            const int64_t i = i0 + r;
            T* pr = p.data + r * kBlock;
            T* dsr = ds.data + r * kBlock;
            const int64_t valid = i < seq ? std::min<int64_t>(kBlock, i - j0 + 1) : 0;
            const T lse_i = i < seq ? lse_bh[i] : T(0);
            const T d_i = i < seq ? row_term.data[i] : T(0);
#pragma omp simd
            for (int64_t c = 0; c < valid; ++c) {
              const T pij = Exp<T>(pr[c] - lse_i);
              pr[c] = pij;
              dsr[c] = pij * (dsr[c] - d_i);
            }
            std::fill(pr + valid, pr + kBlock, T(0));
            std::fill(dsr + valid, dsr + kBlock, T(0));
          }
          // dV[c] += Σ_r P[r, c] dO[i0 + r] and dK[c] += Σ_r dS[r, c] Q'[i0 + r].
          for (int64_t c0 = 0; c0 < kBlock; c0 += kRows) {
            for (int64_t d0 = 0; d0 < hdp; d0 += kCols) {
              Tile<T, true>(0, kBlock, p.data + c0, 1, kBlock, dout_rows.data + i0 * hdp + d0, hdp,
                            dv.data + c0 * hdp + d0, hdp);
              Tile<T, true>(0, kBlock, ds.data + c0, 1, kBlock, q.data + i0 * hdp + d0, hdp,
                            dk.data + c0 * hdp + d0, hdp);
            }
          }
          // dQ[i0 + r] += Σ_c dS[r, c] K[j0 + c] (scaled by s at the end).
          for (int64_t r0 = 0; r0 < kBlock; r0 += kRows) {
            for (int64_t d0 = 0; d0 < hdp; d0 += kCols) {
              Tile<T, true>(0, kBlock, ds.data + r0 * kBlock, kBlock, 1, k.data + j0 * hdp + d0,
                            hdp, dq.data + (i0 + r0) * hdp + d0, hdp);
            }
          }
        }
        T* dk_bh = dqkv + layout.qkv_offset(b, h, 1);
        T* dv_bh = dqkv + layout.qkv_offset(b, h, 2);
        for (int64_t c = 0; c < kBlock && j0 + c < seq; ++c) {
          T* dk_dst = dk_bh + (j0 + c) * stride;
          T* dv_dst = dv_bh + (j0 + c) * stride;
          const T* dk_src = dk.data + c * hdp;
          const T* dv_src = dv.data + c * hdp;
#pragma omp simd
          for (int64_t d = 0; d < head_dim; ++d) {
            dk_dst[d] += dk_src[d];
            dv_dst[d] += dv_src[d];
          }
        }
      }
      T* dq_bh = dqkv + layout.qkv_offset(b, h, 0);
      for (int64_t i = 0; i < seq; ++i) {
        T* dst = dq_bh + i * stride;
        const T* src = dq.data + i * hdp;
#pragma omp simd
        for (int64_t c = 0; c < head_dim; ++c) dst[c] += scale * src[c];
      }
    }
  }
}

}  // namespace
}  // namespace aoetron::ops::cpu::AOETRON_CPU_ISA
