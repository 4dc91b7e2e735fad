// CUDA kernels that treat tensors as flat arrays or gather whole rows: fill, add, axpy, scale,
// sum of squares, dtype conversion, SwiGLU, RoPE, embedding, AdamW.
//
// Most are one grid-stride loop with one thread per element: obviously correct indexing, and
// memory-bound anyway. The two that are not:
//   - SumSquares reduces fixed chunks in f64 (one block per chunk), then the chunk sums in one
//     block: the same bits for a given n on any run.
//   - EmbeddingBackward must add the rows of equal ids in token order (the CPU contract, and what
//     makes it deterministic). It sorts the keys id·n + t (unique, so any correct sort gives one
//     answer) with a bitonic network, then one thread per (run of equal ids, column) adds that
//     run's rows in token order. For f32 this is the CPU's exact sequence of additions.
#include <cmath>
#include <map>
#include <mutex>
#include <tuple>

#include "core/ops/cuda/kernel_util.cuh"
#include "core/ops/cuda/kernels.h"

namespace aoetron::ops::cuda {
namespace {

// ---- Fill, add, axpy, scale, convert
// --------------------------------------------------------------

template <typename W>
__global__ void FillKernel(W* x, int64_t n, W value) {
  AOETRON_GRID_STRIDE_LOOP(i, n) { x[i] = value; }
}

// dst[i] += src[i]
template <typename T>
__global__ void AddIntoKernel(const T* src, T* dst, int64_t n) {
  AOETRON_GRID_STRIDE_LOOP(i, n) { dst[i] = FromFloat<T>(ToFloat(dst[i]) + ToFloat(src[i])); }
}

// y[i] += alpha · x[i]
template <typename T>
__global__ void AxpyKernel(float alpha, const T* x, T* y, int64_t n) {
  AOETRON_GRID_STRIDE_LOOP(i, n) { y[i] = FromFloat<T>(ToFloat(y[i]) + alpha * ToFloat(x[i])); }
}

// x[i] *= alpha
template <typename T>
__global__ void ScaleKernel(T* x, int64_t n, float alpha) {
  AOETRON_GRID_STRIDE_LOOP(i, n) { x[i] = FromFloat<T>(ToFloat(x[i]) * alpha); }
}

template <typename S, typename D>
__global__ void ConvertKernel(const S* src, D* dst, int64_t n) {
  AOETRON_GRID_STRIDE_LOOP(i, n) { dst[i] = FromFloat<D>(ToFloat(src[i])); }
}

// ---- Sum of squares -----------------------------------------------------------------------------

constexpr int64_t kSumChunk = int64_t{1} << 14;

// partial[chunk] = Σ_{i in chunk} x[i]² in f64; one block per chunk.
template <typename T>
__global__ void SumSquaresChunkKernel(const T* x, int64_t n, double* partial) {
  __shared__ double scratch[32];
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kSumChunk;
  const int64_t end = min(n, begin + kSumChunk);
  double sum = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const double v = ToFloat(x[i]);
    sum += v * v;
  }
  sum = BlockSum(sum, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

// *total = Σ_c partial[c]; one block.
__global__ void SumPartialsKernel(const double* partial, int64_t chunks, double* total) {
  __shared__ double scratch[32];
  double sum = 0.0;
  for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) sum += partial[c];
  sum = BlockSum(sum, scratch);
  if (threadIdx.x == 0) *total = sum;
}

// ---- SwiGLU -------------------------------------------------------------------------------------

__device__ __forceinline__ float Sigmoid(float z) { return 1.0f / (1.0f + expf(-z)); }

// out = g·σ(g)·u
template <typename T>
__global__ void SwiGluForwardKernel(const T* gate, const T* up, int64_t n, T* out) {
  AOETRON_GRID_STRIDE_LOOP(i, n) {
    const float g = ToFloat(gate[i]);
    out[i] = FromFloat<T>(g * Sigmoid(g) * ToFloat(up[i]));
  }
}

// dgate += dout·u·σ·(1 + g·(1 − σ)),  dup += dout·g·σ
template <typename T>
__global__ void SwiGluBackwardKernel(const T* dout, const T* gate, const T* up, int64_t n, T* dgate,
                                     T* dup) {
  AOETRON_GRID_STRIDE_LOOP(i, n) {
    const float g = ToFloat(gate[i]), u = ToFloat(up[i]), d = ToFloat(dout[i]);
    const float s = Sigmoid(g);
    dgate[i] = FromFloat<T>(ToFloat(dgate[i]) + d * u * s * (1.0f + g * (1.0f - s)));
    dup[i] = FromFloat<T>(ToFloat(dup[i]) + d * g * s);
  }
}

// ---- RoPE ---------------------------------------------------------------------------------------

// table[p·half + i] = (cos, sin)(p · theta^(−2i/hd)), angles in f64 as on the CPU.
__global__ void RopeTableKernel(int64_t seq, int64_t half, double theta, float2* table) {
  AOETRON_GRID_STRIDE_LOOP(idx, seq * half) {
    const int64_t p = idx / half, i = idx % half;
    const double inv_freq = pow(theta, -2.0 * static_cast<double>(i) / (2.0 * half));
    const double angle = static_cast<double>(p) * inv_freq;
    table[idx] = make_float2(static_cast<float>(cos(angle)), static_cast<float>(sin(angle)));
  }
}

// One thread per (token, vector of q or k, pair i):
//   v'[i] = a cos φ − b·s,  v'[i + half] = a·s + b cos φ,  s = ±sin φ (− for the inverse).
template <typename T>
__global__ void RopeKernel(T* qkv, int64_t tokens, int64_t seq, int64_t first_position,
                           int64_t heads, int64_t head_dim, const float2* table, float sign) {
  const int64_t half = head_dim / 2;
  const int64_t per_token = 2 * heads * half;  // q and k vectors, half pairs each
  AOETRON_GRID_STRIDE_LOOP(idx, tokens * per_token) {
    const int64_t token = idx / per_token;
    const int64_t rest = idx % per_token;
    const int64_t vec = rest / half, i = rest % half;
    const int64_t p = first_position + token % seq;
    const float2 cs = table[p * half + i];
    T* lo = qkv + token * 3 * heads * head_dim + vec * head_dim + i;
    T* hi = lo + half;
    const float a = ToFloat(*lo), b = ToFloat(*hi), c = cs.x, s = sign * cs.y;
    *lo = FromFloat<T>(a * c - b * s);
    *hi = FromFloat<T>(a * s + b * c);
  }
}

// A table covering positions [0, seq) at least, per device: lengths are rounded up to a power of
// two (an entry depends on (p, i, theta) alone), so KV-cache decoding, which asks for one more
// position per token, creates O(log T) tables, not T.
const float2* RopeTable(int device, int64_t positions, int64_t half, double theta) {
  int64_t seq = 1;
  while (seq < positions) seq *= 2;
  static std::mutex mutex;
  static std::map<std::tuple<int, int64_t, int64_t, double>, float2*> tables;
  std::lock_guard<std::mutex> lock(mutex);
  float2*& table = tables[{device, seq, half, theta}];
  if (table == nullptr) {
    DeviceContext& context = DeviceContext::Get(device);
    // Kept for the life of the process: a handful of shapes, tens of KiB each.
    table = static_cast<float2*>(aoetron::cuda::AllocateDeviceMemory(sizeof(float2) * seq * half));
    RopeTableKernel<<<GridFor(seq * half, context), kThreads, 0, context.stream()>>>(seq, half,
                                                                                     theta, table);
    AOETRON_CUDA_CHECK_LAUNCH("RopeTableKernel");
  }
  return table;
}

// ---- Embedding ----------------------------------------------------------------------------------

// out[t, c] = table[ids[t], c]: a copy of the element, no conversion.
template <typename T>
__global__ void EmbeddingForwardKernel(const int32_t* ids, int64_t n, const T* table, int64_t vocab,
                                       int64_t row_begin, int64_t rows, int64_t d, T* out,
                                       DeviceErrorRecord* error) {
  AOETRON_GRID_STRIDE_LOOP(i, n * d) {
    const int64_t t = i / d, c = i % d;
    const int32_t id = ids[t];
    if (id < 0 || id >= vocab) {
      if (c == 0) RaiseDeviceError(error, DeviceErrorCode::kEmbeddingIdOutOfRange, t);
      continue;
    }
    const int64_t row = static_cast<int64_t>(id) - row_begin;
    out[i] = row >= 0 && row < rows ? table[row * d + c] : FromFloat<T>(0.0f);
  }
}

constexpr int64_t kNoKey = INT64_MAX;  // padding, bad ids and other shards' ids sort last

// key[t] = (ids[t] − row_begin)·n + t for t < n and an id of this shard; kNoKey for the padding
// up to a power of two, for bad ids and for ids outside [row_begin, row_begin + rows).
__global__ void EmbeddingKeysKernel(const int32_t* ids, int64_t n, int64_t padded, int64_t vocab,
                                    int64_t row_begin, int64_t rows, int64_t* key,
                                    DeviceErrorRecord* error) {
  AOETRON_GRID_STRIDE_LOOP(t, padded) {
    if (t >= n) {
      key[t] = kNoKey;
      continue;
    }
    const int32_t id = ids[t];
    if (id < 0 || id >= vocab) {
      RaiseDeviceError(error, DeviceErrorCode::kEmbeddingIdOutOfRange, t);
      key[t] = kNoKey;
      continue;
    }
    const int64_t row = static_cast<int64_t>(id) - row_begin;
    key[t] = row >= 0 && row < rows ? row * n + t : kNoKey;
  }
}

// One compare-exchange step (k, j) of the bitonic sorting network over `padded` keys (a power of
// two), ascending overall: element i pairs with i ^ j; the pair is in ascending order when bit k
// of i is clear, descending otherwise.
__global__ void BitonicStepKernel(int64_t* key, int64_t padded, int64_t k, int64_t j) {
  AOETRON_GRID_STRIDE_LOOP(i, padded) {
    const int64_t partner = i ^ j;
    if (partner <= i) continue;  // each pair is handled by its lower index
    const bool ascending = (i & k) == 0;
    const int64_t a = key[i], b = key[partner];
    if ((a > b) == ascending) {
      key[i] = b;
      key[partner] = a;
    }
  }
}

// Grid: x over columns, y (grid-stride) over sorted positions s. A thread whose s starts a run of
// equal ids adds the run's rows into dtable[id, c] in token order, accumulating in f32:
//   acc = dtable[id, c];  acc += dout[t, c] for the run's tokens t ascending;  dtable[id, c] = acc
template <typename T>
__global__ void EmbeddingBackwardKernel(const int64_t* sorted, int64_t n, const T* dout, int64_t d,
                                        T* dtable) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= d) return;
  for (int64_t s = blockIdx.y; s < n; s += gridDim.y) {
    const int64_t key = sorted[s];
    if (key == kNoKey) break;  // the rest are padding or bad ids
    const int64_t id = key / n;
    if (s > 0 && sorted[s - 1] / n == id) continue;  // not the start of its run
    T* dst = dtable + id * d + c;
    float acc = ToFloat(*dst);
    for (int64_t u = s; u < n && sorted[u] != kNoKey && sorted[u] / n == id; ++u) {
      acc += ToFloat(dout[(sorted[u] % n) * d + c]);
    }
    *dst = FromFloat<T>(acc);
  }
}

// ---- AdamW --------------------------------------------------------------------------------------

// m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²,  θ ← θ − η·(m̂ / (sqrt(v̂) + ε) + λ·θ)
__global__ void AdamWKernel(float* theta, const float* g, float* m1, float* m2, int64_t n, float lr,
                            float weight_decay, float beta1, float beta2, float eps,
                            float inv_bias_correction1, float inv_bias_correction2) {
  AOETRON_GRID_STRIDE_LOOP(i, n) {
    const float gi = g[i];
    const float m_i = beta1 * m1[i] + (1.0f - beta1) * gi;
    const float v_i = beta2 * m2[i] + (1.0f - beta2) * gi * gi;
    m1[i] = m_i;
    m2[i] = v_i;
    const float m_hat = m_i * inv_bias_correction1;
    const float v_hat = v_i * inv_bias_correction2;
    theta[i] -= lr * (m_hat / (sqrtf(v_hat) + eps) + weight_decay * theta[i]);
  }
}

}  // namespace

// ---- Entry points -------------------------------------------------------------------------------

void Fill(int device, void* x, int64_t n, size_t element_bytes, uint64_t pattern) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  const unsigned grid = GridFor(n, context);
  switch (element_bytes) {
    case 2:
      FillKernel<<<grid, kThreads, 0, context.stream()>>>(static_cast<uint16_t*>(x), n,
                                                          static_cast<uint16_t>(pattern));
      break;
    case 4:
      FillKernel<<<grid, kThreads, 0, context.stream()>>>(static_cast<uint32_t*>(x), n,
                                                          static_cast<uint32_t>(pattern));
      break;
    case 8:
      FillKernel<<<grid, kThreads, 0, context.stream()>>>(static_cast<uint64_t*>(x), n, pattern);
      break;
    default:
      AOETRON_CHECK(false) << "cuda::Fill: element size " << element_bytes;
  }
  AOETRON_CUDA_CHECK_LAUNCH("FillKernel");
}

void AddInto(int device, DType dtype, const void* src, void* dst, int64_t n) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "AddInto", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    AddIntoKernel<<<GridFor(n, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(src), static_cast<T*>(dst), n);
  });
  AOETRON_CUDA_CHECK_LAUNCH("AddIntoKernel");
}

void Axpy(int device, DType dtype, float alpha, const void* x, void* y, int64_t n) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "Axpy", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    AxpyKernel<<<GridFor(n, context), kThreads, 0, context.stream()>>>(
        alpha, static_cast<const T*>(x), static_cast<T*>(y), n);
  });
  AOETRON_CUDA_CHECK_LAUNCH("AxpyKernel");
}

void Scale(int device, DType dtype, void* x, int64_t n, float alpha) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "Scale", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    ScaleKernel<<<GridFor(n, context), kThreads, 0, context.stream()>>>(static_cast<T*>(x), n,
                                                                        alpha);
  });
  AOETRON_CUDA_CHECK_LAUNCH("ScaleKernel");
}

double SumSquares(int device, DType dtype, const void* x, int64_t n) {
  if (n == 0) return 0.0;
  DeviceContext& context = DeviceContext::Get(device);
  const int64_t chunks = (n + kSumChunk - 1) / kSumChunk;
  DeviceScratch<double> partial(chunks + 1);  // the last entry receives the total
  DispatchFloat(dtype, "SumSquares", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    SumSquaresChunkKernel<<<static_cast<unsigned>(chunks), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(x), n, partial.get());
  });
  AOETRON_CUDA_CHECK_LAUNCH("SumSquaresChunkKernel");
  SumPartialsKernel<<<1, 1024, 0, context.stream()>>>(partial.get(), chunks,
                                                      partial.get() + chunks);
  AOETRON_CUDA_CHECK_LAUNCH("SumPartialsKernel");
  double total = 0.0;
  aoetron::cuda::CopyDeviceToHost(device, partial.get() + chunks, &total, sizeof(total));
  return total;
}

void Convert(int device, DType src_dtype, const void* src, DType dst_dtype, void* dst, int64_t n) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(src_dtype, "Convert", [&](auto s_tag) {
    using S = typename decltype(s_tag)::type;
    DispatchFloat(dst_dtype, "Convert", [&](auto d_tag) {
      using D = typename decltype(d_tag)::type;
      ConvertKernel<<<GridFor(n, context), kThreads, 0, context.stream()>>>(
          static_cast<const S*>(src), static_cast<D*>(dst), n);
    });
  });
  AOETRON_CUDA_CHECK_LAUNCH("ConvertKernel");
}

void SwiGluForward(int device, DType dtype, const void* gate, const void* up, int64_t n,
                   void* out) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "SwiGluForward", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    SwiGluForwardKernel<<<GridFor(n, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(gate), static_cast<const T*>(up), n, static_cast<T*>(out));
  });
  AOETRON_CUDA_CHECK_LAUNCH("SwiGluForwardKernel");
}

void SwiGluBackward(int device, DType dtype, const void* dout, const void* gate, const void* up,
                    int64_t n, void* dgate, void* dup) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "SwiGluBackward", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    SwiGluBackwardKernel<<<GridFor(n, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(dout), static_cast<const T*>(gate), static_cast<const T*>(up), n,
        static_cast<T*>(dgate), static_cast<T*>(dup));
  });
  AOETRON_CUDA_CHECK_LAUNCH("SwiGluBackwardKernel");
}

void Rope(int device, DType dtype, void* qkv, int64_t batch, int64_t seq, int64_t heads,
          int64_t head_dim, double theta, bool inverse, int64_t first_position) {
  const int64_t half = head_dim / 2;
  const int64_t work = batch * seq * 2 * heads * half;
  if (work == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  const float2* table = RopeTable(device, first_position + seq, half, theta);
  DispatchFloat(dtype, "Rope", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    RopeKernel<<<GridFor(work, context), kThreads, 0, context.stream()>>>(
        static_cast<T*>(qkv), batch * seq, seq, first_position, heads, head_dim, table,
        inverse ? -1.0f : 1.0f);
  });
  AOETRON_CUDA_CHECK_LAUNCH("RopeKernel");
}

void EmbeddingForward(int device, DType dtype, const int32_t* ids, int64_t n, const void* table,
                      int64_t vocab, int64_t row_begin, int64_t rows, int64_t d, void* out) {
  if (n * d == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "EmbeddingForward", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    EmbeddingForwardKernel<<<GridFor(n * d, context), kThreads, 0, context.stream()>>>(
        ids, n, static_cast<const T*>(table), vocab, row_begin, rows, d, static_cast<T*>(out),
        context.error_record());
  });
  AOETRON_CUDA_CHECK_LAUNCH("EmbeddingForwardKernel");
}

void EmbeddingBackward(int device, DType dtype, const int32_t* ids, int64_t n, const void* dout,
                       int64_t vocab, int64_t row_begin, int64_t rows, int64_t d, void* dtable) {
  if (n == 0 || d == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  int64_t padded = 1;
  while (padded < n) padded <<= 1;
  DeviceScratch<int64_t> keys(padded);
  const unsigned grid = GridFor(padded, context);
  EmbeddingKeysKernel<<<grid, kThreads, 0, context.stream()>>>(
      ids, n, padded, vocab, row_begin, rows, keys.get(), context.error_record());
  AOETRON_CUDA_CHECK_LAUNCH("EmbeddingKeysKernel");
  for (int64_t k = 2; k <= padded; k <<= 1) {
    for (int64_t j = k >> 1; j > 0; j >>= 1) {
      BitonicStepKernel<<<grid, kThreads, 0, context.stream()>>>(keys.get(), padded, k, j);
      AOETRON_CUDA_CHECK_LAUNCH("BitonicStepKernel");
    }
  }
  const dim3 block(kThreads);
  const dim3 blocks(static_cast<unsigned>((d + kThreads - 1) / kThreads),
                    static_cast<unsigned>(std::min<int64_t>(n, 65535)));
  DispatchFloat(dtype, "EmbeddingBackward", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    EmbeddingBackwardKernel<<<blocks, block, 0, context.stream()>>>(
        keys.get(), n, static_cast<const T*>(dout), d, static_cast<T*>(dtable));
  });
  AOETRON_CUDA_CHECK_LAUNCH("EmbeddingBackwardKernel");
}

void AdamW(int device, float* param, const float* grad, float* m, float* v, int64_t n, float lr,
           float weight_decay, float beta1, float beta2, float eps, float inv_bias_correction1,
           float inv_bias_correction2) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  AdamWKernel<<<GridFor(n, context), kThreads, 0, context.stream()>>>(
      param, grad, m, v, n, lr, weight_decay, beta1, beta2, eps, inv_bias_correction1,
      inv_bias_correction2);
  AOETRON_CUDA_CHECK_LAUNCH("AdamWKernel");
}

}  // namespace aoetron::ops::cuda
