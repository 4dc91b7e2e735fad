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
// register-tiled loop (Tile, attention_cpu_body.h): an R×W block of the output held in vector
// registers while k streams through, written with GCC/Clang vector extensions so the same code
// serves f32 and f64. It is compiled twice (core/ops/cpu/isa_variants.h) and the variant picked
// at run time (core/cpu_isa.h): AVX-512 with 4 rows × 4 64-byte vectors, AVX2 with 8 rows × 1
// 32-byte vector (a wider AVX2 tile would spill its 16 registers). Chosen by measurement over
// calling ops::Gemm per head: inside an OpenMP region oneDNN's sgemm runs single-threaded, it
// cannot skip the masked half of Q Kᵀ, and at 256×256×64 its per-call packing is a large share
// of the work (docs/performance.md has the figures).

// Every operand of a (b, h) is first copied into per-thread scratch, zero-padded to whole tiles:
// Q', K, dO row-major [Tp, hdp]; Kᵀ and Vᵀ [hdp, Tp] (so S and dP stream rows of Kᵀ, Vᵀ);
// the tile loops then need no edge cases, and padding contributes exact zeros. The forward takes
// query rows R at a time and computes only the key columns up to their diagonal (rounded up to
// a tile); the backward works in 64 × 64 blocks of (query, key) pairs at or below the diagonal,
// key block by key block (attention_cpu_body.h). Either way the causal mask saves half the work.
//
// Each (b, h) is computed by one thread with the same code whatever the thread count, and the
// threads write disjoint slices of out, lse and dqkv: results are bitwise thread-independent.
#include "core/ops/cpu/kernels.h"

#define AOETRON_CPU_ISA avx2
#include "core/ops/cpu/attention_cpu_body.h"
#undef AOETRON_CPU_ISA
AOETRON_AVX512_BEGIN
#define AOETRON_CPU_ISA avx512
#include "core/ops/cpu/attention_cpu_body.h"
#undef AOETRON_CPU_ISA
AOETRON_AVX512_END

namespace aoetron::ops::cpu {

template <typename T>
void CausalAttentionForward(const T* qkv, int64_t batch, int64_t seq, int64_t heads,
                            int64_t head_dim, T* out, T* lse) {
  AOETRON_CPU_DISPATCH(avx512::CausalAttentionForward<T>, avx2::CausalAttentionForward<T>)
  (qkv, batch, seq, heads, head_dim, out, lse);
}

template <typename T>
void CausalAttentionBackward(const T* dout, const T* qkv, const T* out, const T* lse, int64_t batch,
                             int64_t seq, int64_t heads, int64_t head_dim, T* dqkv) {
  AOETRON_CPU_DISPATCH(avx512::CausalAttentionBackward<T>, avx2::CausalAttentionBackward<T>)
  (dout, qkv, out, lse, batch, seq, heads, head_dim, dqkv);
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
