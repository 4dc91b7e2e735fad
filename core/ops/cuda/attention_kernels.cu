// Causal multi-head attention on CUDA: flash-style tiles, online softmax, no T×T matrix.
//
// Per (b, h), with Q, K, V, O, dO: [T, hd], s = 1/sqrt(hd), Q' = s·Q (as on the CPU):
//   forward:  S = Q' Kᵀ (S[i, j] = −∞ for j > i),  lse_i = log Σ_j e^S[i,j],  O = e^(S − lse) V
//   backward: P = e^(S − lse) recomputed tile by tile from Q', K and lse
//             D_i = Σ_c dO[i, c] O[i, c]
//             dP = dO Vᵀ,  dS = P ⊙ (dP − D),  dQ = s · dS K,  dK = dSᵀ Q',  dV = Pᵀ dO
//
// Tiles of kTile = 32 query rows × 32 key rows; one block of 8 warps per tile; operands staged in
// shared memory as f32 (bf16 inputs are widened on load), all arithmetic in f32. A warp owns 4
// rows of a tile throughout (rows warp, warp+8, warp+16, warp+24) and its lane c owns key column
// c of the tile, so the softmax statistics of a row live in the registers of one warp and need no
// block-wide synchronisation.
//
// Forward (grid: query tiles × B·H). For each key tile j0 ≤ the tile's last row:
//   S[r, c] = Q'[r]·K[c] (−∞ where masked),  m' = max(m, max_c S[r, c]),
//   p = e^(S − m'),  α = e^(m − m'),  l = α·l + Σ_c p,  O[r] = α·O[r] + Σ_c p[c]·V[c],  m = m'
// then out = O / l and lse = m + log l.
//
// Backward: two kernels, so every gradient element is written by one block (no atomics, the
// same bits every run): the dQ kernel walks the key tiles of each query tile, the dK/dV kernel
// walks the query tiles of each key tile; each recomputes P and dS for its tile pairs (the
// price of determinism: S and dP are computed twice).
//
// This is the simple, obviously-indexed version: CUDA-core FMAs from shared memory, no tensor
// cores. Shared memory per block is 33–205 KiB depending on hd (≤ 256); above 48 KiB the kernels
// opt in with cudaFuncSetAttribute.
#include <cmath>

#include "core/ops/cuda/kernel_util.cuh"
#include "core/ops/cuda/kernels.h"

namespace aoetron::ops::cuda {
namespace {

constexpr int kTile = 32;
constexpr int kAttentionThreads = 256;
constexpr int kAttentionWarps = kAttentionThreads / 32;
constexpr int kRowsPerWarp = kTile / kAttentionWarps;  // 4
constexpr int kScoreLd = kTile + 1;                    // padded row of a P or dS tile

struct HeadShape {
  int64_t seq, heads, head_dim;
  // Element (b, t, part, h, e) of qkv [B, T, 3, H, hd].
  __device__ int64_t Qkv(int64_t b, int64_t t, int part, int64_t h, int64_t e) const {
    return (((b * seq + t) * 3 + part) * heads + h) * head_dim + e;
  }
  // Element (b, t, h, e) of out/dout [B, T, H, hd].
  __device__ int64_t Out(int64_t b, int64_t t, int64_t h, int64_t e) const {
    return ((b * seq + t) * heads + h) * head_dim + e;
  }
};

// tile[r·ld + e] = scale · part `part` of token row0 + r of (b, h); zero for rows ≥ seq.
template <typename T>
__device__ void LoadQkvTile(const T* qkv, const HeadShape& shape, int64_t b, int64_t h, int part,
                            int64_t row0, float scale, float* tile, int ld) {
  const int64_t hd = shape.head_dim;
  for (int64_t idx = threadIdx.x; idx < kTile * hd; idx += blockDim.x) {
    const int64_t r = idx / hd, e = idx % hd, t = row0 + r;
    tile[r * ld + e] = t < shape.seq ? scale * ToFloat(qkv[shape.Qkv(b, t, part, h, e)]) : 0.0f;
  }
}

// tile[r·ld + e] = x[b, row0 + r, h, e] for x of shape [B, T, H, hd]; zero for rows ≥ seq.
template <typename T>
__device__ void LoadOutTile(const T* x, const HeadShape& shape, int64_t b, int64_t h, int64_t row0,
                            float* tile, int ld) {
  const int64_t hd = shape.head_dim;
  for (int64_t idx = threadIdx.x; idx < kTile * hd; idx += blockDim.x) {
    const int64_t r = idx / hd, e = idx % hd, t = row0 + r;
    tile[r * ld + e] = t < shape.seq ? ToFloat(x[shape.Out(b, t, h, e)]) : 0.0f;
  }
}

__device__ void ZeroTile(float* tile, int64_t count) {
  for (int64_t idx = threadIdx.x; idx < count; idx += blockDim.x) tile[idx] = 0.0f;
}

// Σ_e a[e]·b[e] over one head dimension.
__device__ __forceinline__ float Dot(const float* a, const float* b, int64_t hd) {
  float acc = 0.0f;
  for (int64_t e = 0; e < hd; ++e) acc += a[e] * b[e];
  return acc;
}

// ---- Forward ------------------------------------------------------------------------------------

size_t ForwardSharedBytes(int64_t hd) {
  return sizeof(float) * (3 * kTile * hd + kTile * (hd + 1) + kTile * kScoreLd);
}

template <typename T>
__global__ void __launch_bounds__(kAttentionThreads)
    AttentionForwardKernel(const T* qkv, HeadShape shape, float scale, T* out, float* lse) {
  extern __shared__ float smem[];
  const int64_t hd = shape.head_dim, seq = shape.seq;
  const int ldk = static_cast<int>(hd) + 1;  // K rows padded: lanes read K[c][e] for 32 c at once
  float* q = smem;                           // [kTile, hd]   Q' rows of this tile
  float* k = q + kTile * hd;                 // [kTile, hd+1] K rows of the current key tile
  float* v = k + kTile * ldk;                // [kTile, hd]   V rows of the current key tile
  float* o = v + kTile * hd;                 // [kTile, hd]   unnormalised output accumulator
  float* p = o + kTile * hd;  // [kTile, kTile+1] probabilities of the current tile pair
  const int64_t bh = blockIdx.y, b = bh / shape.heads, h = bh % shape.heads;
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

  LoadQkvTile(qkv, shape, b, h, 0, i0, scale, q, static_cast<int>(hd));
  ZeroTile(o, kTile * hd);
  float m[kRowsPerWarp], l[kRowsPerWarp];
#pragma unroll
  for (int ii = 0; ii < kRowsPerWarp; ++ii) {
    m[ii] = -INFINITY;
    l[ii] = 0.0f;
  }
  const int64_t last_key = min(i0 + kTile, seq) - 1;  // furthest key a valid row here may see
  for (int64_t j0 = 0; j0 <= last_key; j0 += kTile) {
    __syncthreads();  // every warp is done with the previous K and V tiles
    LoadQkvTile(qkv, shape, b, h, 1, j0, 1.0f, k, ldk);
    LoadQkvTile(qkv, shape, b, h, 2, j0, 1.0f, v, static_cast<int>(hd));
    __syncthreads();
    float alpha[kRowsPerWarp];
#pragma unroll
    for (int ii = 0; ii < kRowsPerWarp; ++ii) {
      const int r = warp + ii * kAttentionWarps;
      const int64_t i = i0 + r, j = j0 + lane;
      const float s = (j <= i && j < seq) ? Dot(q + r * hd, k + lane * ldk, hd) : -INFINITY;
      const float m_new = fmaxf(m[ii], WarpMax(s));
      float prob = 0.0f;
      alpha[ii] = 1.0f;
      if (m_new != -INFINITY) {
        prob = s == -INFINITY ? 0.0f : expf(s - m_new);
        alpha[ii] = expf(m[ii] - m_new);  // 0 while m was still −∞
      }
      l[ii] = l[ii] * alpha[ii] + WarpSum(prob);
      m[ii] = m_new;
      p[r * kScoreLd + lane] = prob;
    }
    __syncwarp();  // this warp's p rows are written before its lanes read them
#pragma unroll
    for (int ii = 0; ii < kRowsPerWarp; ++ii) {
      const int r = warp + ii * kAttentionWarps;
      for (int64_t e = lane; e < hd; e += 32) {
        float acc = o[r * hd + e] * alpha[ii];
        for (int c = 0; c < kTile; ++c) acc += p[r * kScoreLd + c] * v[c * hd + e];
        o[r * hd + e] = acc;
      }
    }
  }
#pragma unroll
  for (int ii = 0; ii < kRowsPerWarp; ++ii) {
    const int r = warp + ii * kAttentionWarps;
    const int64_t i = i0 + r;
    if (i >= seq) continue;
    const float inv_l = 1.0f / l[ii];
    for (int64_t e = lane; e < hd; e += 32) {
      out[shape.Out(b, i, h, e)] = FromFloat<T>(o[r * hd + e] * inv_l);
    }
    if (lane == 0) lse[bh * seq + i] = m[ii] + logf(l[ii]);
  }
}

// ---- Backward -----------------------------------------------------------------------------------

// Warp per (b·h, i): row_term[bh·T + i] = D_i = Σ_c dO[i, c]·O[i, c].
template <typename T>
__global__ void AttentionRowTermKernel(const T* dout, const T* out, HeadShape shape, int64_t batch,
                                       float* row_term) {
  const int lane = threadIdx.x % 32;
  const int64_t rows = batch * shape.heads * shape.seq;
  const int warps = blockDim.x / 32;
  for (int64_t item = static_cast<int64_t>(blockIdx.x) * warps + threadIdx.x / 32; item < rows;
       item += static_cast<int64_t>(gridDim.x) * warps) {
    const int64_t bh = item / shape.seq, i = item % shape.seq;
    const int64_t b = bh / shape.heads, h = bh % shape.heads;
    float dot = 0.0f;
    for (int64_t e = lane; e < shape.head_dim; e += 32) {
      const int64_t at = shape.Out(b, i, h, e);
      dot += ToFloat(dout[at]) * ToFloat(out[at]);
    }
    dot = WarpSum(dot);
    if (lane == 0) row_term[item] = dot;
  }
}

size_t GradQSharedBytes(int64_t hd) {
  return sizeof(float) * (3 * kTile * hd + 2 * kTile * (hd + 1) + kTile * kScoreLd);
}

// Grid: query tiles × B·H. dQ[i] = s · Σ_j dS[i, j]·K[j] over the key tiles up to the diagonal,
// added into dqkv's q part.
template <typename T>
__global__ void __launch_bounds__(kAttentionThreads)
    AttentionGradQKernel(const T* dout, const T* qkv, const float* lse, const float* row_term,
                         HeadShape shape, float scale, T* dqkv) {
  extern __shared__ float smem[];
  const int64_t hd = shape.head_dim, seq = shape.seq;
  const int ldk = static_cast<int>(hd) + 1;
  float* q = smem;                     // [kTile, hd]   Q'
  float* dout_tile = q + kTile * hd;   // [kTile, hd]   dO
  float* dq = dout_tile + kTile * hd;  // [kTile, hd]   Σ dS K (unscaled)
  float* k = dq + kTile * hd;          // [kTile, hd+1]
  float* v = k + kTile * ldk;          // [kTile, hd+1]
  float* ds = v + kTile * ldk;         // [kTile, kTile+1]
  const int64_t bh = blockIdx.y, b = bh / shape.heads, h = bh % shape.heads;
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

  LoadQkvTile(qkv, shape, b, h, 0, i0, scale, q, static_cast<int>(hd));
  LoadOutTile(dout, shape, b, h, i0, dout_tile, static_cast<int>(hd));
  ZeroTile(dq, kTile * hd);
  const int64_t last_key = min(i0 + kTile, seq) - 1;
  for (int64_t j0 = 0; j0 <= last_key; j0 += kTile) {
    __syncthreads();
    LoadQkvTile(qkv, shape, b, h, 1, j0, 1.0f, k, ldk);
    LoadQkvTile(qkv, shape, b, h, 2, j0, 1.0f, v, ldk);
    __syncthreads();
#pragma unroll
    for (int ii = 0; ii < kRowsPerWarp; ++ii) {
      const int r = warp + ii * kAttentionWarps;
      const int64_t i = i0 + r, j = j0 + lane;
      float ds_value = 0.0f;
      if (i < seq && j <= i) {  // j ≤ i < seq
        const float prob = expf(Dot(q + r * hd, k + lane * ldk, hd) - lse[bh * seq + i]);
        const float dp = Dot(dout_tile + r * hd, v + lane * ldk, hd);
        ds_value = prob * (dp - row_term[bh * seq + i]);
      }
      ds[r * kScoreLd + lane] = ds_value;
    }
    __syncwarp();
#pragma unroll
    for (int ii = 0; ii < kRowsPerWarp; ++ii) {
      const int r = warp + ii * kAttentionWarps;
      for (int64_t e = lane; e < hd; e += 32) {
        float acc = dq[r * hd + e];
        for (int c = 0; c < kTile; ++c) acc += ds[r * kScoreLd + c] * k[c * ldk + e];
        dq[r * hd + e] = acc;
      }
    }
  }
#pragma unroll
  for (int ii = 0; ii < kRowsPerWarp; ++ii) {
    const int r = warp + ii * kAttentionWarps;
    const int64_t i = i0 + r;
    if (i >= seq) continue;
    for (int64_t e = lane; e < hd; e += 32) {
      T* dst = dqkv + shape.Qkv(b, i, 0, h, e);
      *dst = FromFloat<T>(ToFloat(*dst) + scale * dq[r * hd + e]);
    }
  }
}

size_t GradKVSharedBytes(int64_t hd) {
  return sizeof(float) * (2 * kTile * (hd + 1) + 4 * kTile * hd + 2 * kTile * kScoreLd);
}

// Grid: key tiles × B·H. Over the query tiles at or below the diagonal:
//   dV[j] = Σ_i P[i, j]·dO[i],  dK[j] = Σ_i dS[i, j]·Q'[i],  added into dqkv's k and v parts.
template <typename T>
__global__ void __launch_bounds__(kAttentionThreads)
    AttentionGradKVKernel(const T* dout, const T* qkv, const float* lse, const float* row_term,
                          HeadShape shape, float scale, T* dqkv) {
  extern __shared__ float smem[];
  const int64_t hd = shape.head_dim, seq = shape.seq;
  const int ldk = static_cast<int>(hd) + 1;
  float* k = smem;                    // [kTile, hd+1] K rows of this key tile
  float* v = k + kTile * ldk;         // [kTile, hd+1] V rows
  float* dk = v + kTile * ldk;        // [kTile, hd]
  float* dv = dk + kTile * hd;        // [kTile, hd]
  float* q = dv + kTile * hd;         // [kTile, hd]   Q' rows of the current query tile
  float* dout_tile = q + kTile * hd;  // [kTile, hd]
  float* p = dout_tile + kTile * hd;  // [kTile, kTile+1] P[query r, key c]
  float* ds = p + kTile * kScoreLd;   // [kTile, kTile+1] dS[query r, key c]
  const int64_t bh = blockIdx.y, b = bh / shape.heads, h = bh % shape.heads;
  const int64_t j0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

  LoadQkvTile(qkv, shape, b, h, 1, j0, 1.0f, k, ldk);
  LoadQkvTile(qkv, shape, b, h, 2, j0, 1.0f, v, ldk);
  ZeroTile(dk, kTile * hd);
  ZeroTile(dv, kTile * hd);
  // Queries i ≥ j ≥ j0 see this tile's keys; tiles are aligned, so they start at tile j0.
  for (int64_t i0 = j0; i0 < seq; i0 += kTile) {
    __syncthreads();  // the previous query tile's q, dO, p, ds are no longer read
    LoadQkvTile(qkv, shape, b, h, 0, i0, scale, q, static_cast<int>(hd));
    LoadOutTile(dout, shape, b, h, i0, dout_tile, static_cast<int>(hd));
    __syncthreads();
#pragma unroll
    for (int ii = 0; ii < kRowsPerWarp; ++ii) {
      const int r = warp + ii * kAttentionWarps;  // query row of the tile
      const int64_t i = i0 + r, j = j0 + lane;    // lane = key column
      float prob = 0.0f, ds_value = 0.0f;
      if (i < seq && j <= i) {
        prob = expf(Dot(q + r * hd, k + lane * ldk, hd) - lse[bh * seq + i]);
        const float dp = Dot(dout_tile + r * hd, v + lane * ldk, hd);
        ds_value = prob * (dp - row_term[bh * seq + i]);
      }
      p[r * kScoreLd + lane] = prob;
      ds[r * kScoreLd + lane] = ds_value;
    }
    __syncthreads();  // the dK/dV pass below reads every warp's p and ds columns
#pragma unroll
    for (int jj = 0; jj < kRowsPerWarp; ++jj) {
      const int c = warp + jj * kAttentionWarps;  // key row of the tile
      for (int64_t e = lane; e < hd; e += 32) {
        float acc_v = dv[c * hd + e], acc_k = dk[c * hd + e];
        for (int r = 0; r < kTile; ++r) {
          acc_v += p[r * kScoreLd + c] * dout_tile[r * hd + e];
          acc_k += ds[r * kScoreLd + c] * q[r * hd + e];
        }
        dv[c * hd + e] = acc_v;
        dk[c * hd + e] = acc_k;
      }
    }
  }
#pragma unroll
  for (int jj = 0; jj < kRowsPerWarp; ++jj) {
    const int c = warp + jj * kAttentionWarps;
    const int64_t j = j0 + c;
    if (j >= seq) continue;
    for (int64_t e = lane; e < hd; e += 32) {
      T* dst_k = dqkv + shape.Qkv(b, j, 1, h, e);
      T* dst_v = dqkv + shape.Qkv(b, j, 2, h, e);
      *dst_k = FromFloat<T>(ToFloat(*dst_k) + dk[c * hd + e]);
      *dst_v = FromFloat<T>(ToFloat(*dst_v) + dv[c * hd + e]);
    }
  }
}

// Opts `kernel` into `bytes` of dynamic shared memory (needed above 48 KiB).
template <typename Kernel>
void PrepareSharedMemory(Kernel kernel, size_t bytes, const DeviceContext& context,
                         const char* name) {
  AOETRON_CHECK(bytes <= context.max_shared_memory_per_block())
      << name << ": needs " << bytes << " bytes of shared memory per block, the device allows "
      << context.max_shared_memory_per_block();
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(bytes)));
}

dim3 AttentionGrid(int64_t batch, int64_t seq, int64_t heads) {
  AOETRON_CHECK(batch * heads <= 65535)
      << "CausalAttention (CUDA): batch·heads = " << batch * heads << " exceeds 65535";
  return dim3(static_cast<unsigned>((seq + kTile - 1) / kTile),
              static_cast<unsigned>(batch * heads));
}

}  // namespace

void CausalAttentionForward(int device, DType dtype, const void* qkv, int64_t batch, int64_t seq,
                            int64_t heads, int64_t head_dim, void* out, float* lse) {
  if (batch * heads * seq == 0) return;
  AOETRON_CHECK(head_dim >= 1 && head_dim <= kMaxAttentionHeadDim)
      << "CausalAttentionForward (CUDA): head_dim " << head_dim << " outside [1, "
      << kMaxAttentionHeadDim << "]";
  DeviceContext& context = DeviceContext::Get(device);
  const HeadShape shape{seq, heads, head_dim};
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  const size_t shared = ForwardSharedBytes(head_dim);
  DispatchFloat(dtype, "CausalAttentionForward", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    PrepareSharedMemory(AttentionForwardKernel<T>, shared, context, "AttentionForwardKernel");
    AttentionForwardKernel<T>
        <<<AttentionGrid(batch, seq, heads), kAttentionThreads, shared, context.stream()>>>(
            static_cast<const T*>(qkv), shape, scale, static_cast<T*>(out), lse);
  });
  AOETRON_CUDA_CHECK_LAUNCH("AttentionForwardKernel");
}

void CausalAttentionBackward(int device, DType dtype, const void* dout, const void* qkv,
                             const void* out, const float* lse, int64_t batch, int64_t seq,
                             int64_t heads, int64_t head_dim, void* dqkv) {
  if (batch * heads * seq == 0) return;
  AOETRON_CHECK(head_dim >= 1 && head_dim <= kMaxAttentionHeadDim)
      << "CausalAttentionBackward (CUDA): head_dim " << head_dim << " outside [1, "
      << kMaxAttentionHeadDim << "]";
  DeviceContext& context = DeviceContext::Get(device);
  const HeadShape shape{seq, heads, head_dim};
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  const int64_t rows = batch * heads * seq;
  DeviceScratch<float> row_term(rows);
  const dim3 grid = AttentionGrid(batch, seq, heads);
  DispatchFloat(dtype, "CausalAttentionBackward", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    AttentionRowTermKernel<T><<<GridFor(rows * 32, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(dout), static_cast<const T*>(out), shape, batch, row_term.get());
    AOETRON_CUDA_CHECK_LAUNCH("AttentionRowTermKernel");
    const size_t shared_q = GradQSharedBytes(head_dim);
    PrepareSharedMemory(AttentionGradQKernel<T>, shared_q, context, "AttentionGradQKernel");
    AttentionGradQKernel<T><<<grid, kAttentionThreads, shared_q, context.stream()>>>(
        static_cast<const T*>(dout), static_cast<const T*>(qkv), lse, row_term.get(), shape, scale,
        static_cast<T*>(dqkv));
    AOETRON_CUDA_CHECK_LAUNCH("AttentionGradQKernel");
    const size_t shared_kv = GradKVSharedBytes(head_dim);
    PrepareSharedMemory(AttentionGradKVKernel<T>, shared_kv, context, "AttentionGradKVKernel");
    AttentionGradKVKernel<T><<<grid, kAttentionThreads, shared_kv, context.stream()>>>(
        static_cast<const T*>(dout), static_cast<const T*>(qkv), lse, row_term.get(), shape, scale,
        static_cast<T*>(dqkv));
    AOETRON_CUDA_CHECK_LAUNCH("AttentionGradKVKernel");
  });
}

}  // namespace aoetron::ops::cuda
