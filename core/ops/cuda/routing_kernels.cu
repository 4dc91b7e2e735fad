// CUDA kernels of expert routing: top-K, AoE's grouped L2 norms, the fused AoE gate, and the
// permute / gather / combine between token order [N, ·] and grouped order [N·K, ·].
//
// Top-K runs the CPU's own algorithm, one thread per row (rows are 8–256 scores and K is small):
// a left-to-right scan keeping the best K in descending order, a new score entering only when
// strictly greater than the K-th — so ties go to the lower index exactly as on the CPU.
//
// The permute family writes each output element from exactly one thread: position is a bijection
// onto the grouped rows (a precondition, see core/cuda/device_errors.h), and every per-token sum
// over j runs inside one thread in order of j. No atomics, the CPU's order of additions.
#include <cmath>

#include "core/ops/cuda/kernel_util.cuh"
#include "core/ops/cuda/kernels.h"

namespace aoetron::ops::cuda {
namespace {

constexpr int kWarpsPerBlock = kThreads / 32;

// A norm stored as T: f64 → f32 (→ bf16, rounded to nearest even). The fused gate and
// GroupedL2Norm share it, so both store the same bits.
template <typename T>
__device__ __forceinline__ T NormToT(double norm) {
  return FromFloat<T>(static_cast<float>(norm));
}

// The CPU's top-K scan over one row of m scores (read through `score(col)`), writing the k best
// in descending order to values/indices. A NaN score is reported and skipped.
template <typename T, typename ScoreAt>
__device__ void TopKRow(ScoreAt score, int64_t m, int64_t k, T* values, int32_t* indices,
                        int64_t flat_base, DeviceErrorRecord* error) {
  int64_t kept = 0;
  for (int64_t col = 0; col < m; ++col) {
    const T element = score(col);
    const float s = ToFloat(element);
    if (isnan(s)) {
      RaiseDeviceError(error, DeviceErrorCode::kNanScore, flat_base + col);
      continue;
    }
    if (kept == k && !(s > ToFloat(values[k - 1]))) continue;
    // Insertion point: after every kept value ≥ s.
    int64_t pos = kept < k ? kept : k - 1;
    while (pos > 0 && ToFloat(values[pos - 1]) < s) {
      values[pos] = values[pos - 1];
      indices[pos] = indices[pos - 1];
      --pos;
    }
    values[pos] = element;
    indices[pos] = static_cast<int32_t>(col);
    if (kept < k) ++kept;
  }
}

// Thread per row.
template <typename T>
__global__ void TopKKernel(const T* scores, int64_t n, int64_t m, int64_t k, T* values,
                           int32_t* indices, DeviceErrorRecord* error) {
  AOETRON_GRID_STRIDE_LOOP(row, n) {
    const T* s = scores + row * m;
    TopKRow<T>([s](int64_t col) { return s[col]; }, m, k, values + row * k, indices + row * k,
               row * m, error);
  }
}

// Thread per row: dscores[row, indices[row, j]] += dvalues[row, j] for j in order.
template <typename T>
__global__ void TopKBackwardKernel(const T* dvalues, const int32_t* indices, int64_t n, int64_t m,
                                   int64_t k, T* dscores, DeviceErrorRecord* error) {
  AOETRON_GRID_STRIDE_LOOP(row, n) {
    for (int64_t j = 0; j < k; ++j) {
      const int32_t col = indices[row * k + j];
      if (col < 0 || col >= m) {
        RaiseDeviceError(error, DeviceErrorCode::kTopKIndexOutOfRange, row * k + j);
        continue;
      }
      T* dst = dscores + row * m + col;
      *dst = FromFloat<T>(ToFloat(*dst) + ToFloat(dvalues[row * k + j]));
    }
  }
}

// Warp per (row, group): norms[row, g] = sqrt(Σ_i c[row, g·w + i]²), the sum in f64.
template <typename T>
__device__ __forceinline__ double GroupSumSquares(const T* cg, int64_t width, int lane) {
  double sum = 0.0;
  for (int64_t i = lane; i < width; i += 32) {
    const double v = ToFloat(cg[i]);
    sum += v * v;
  }
  return WarpSum(sum);
}

template <typename T>
__global__ void GroupedL2NormKernel(const T* c, int64_t n, int64_t groups, int64_t width,
                                    T* norms) {
  const int lane = threadIdx.x % 32;
  const int64_t items = n * groups;
  for (int64_t item = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
       item < items; item += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
    const double sum = GroupSumSquares(c + item * width, width, lane);  // row-major: item·w
    if (lane == 0) norms[item] = NormToT<T>(sqrt(sum));
  }
}

// Thread per element: dc[row, g·w + i] += dnorms[row, g] / norms[row, g] · c[row, g·w + i]; a
// zero norm contributes nothing.
template <typename T>
__global__ void GroupedL2NormBackwardKernel(const T* dnorms, const T* c, const T* norms, int64_t n,
                                            int64_t groups, int64_t width, T* dc) {
  AOETRON_GRID_STRIDE_LOOP(i, n * groups * width) {
    const int64_t item = i / width;  // row·groups + g
    const float norm = ToFloat(norms[item]);
    if (norm == 0.0f) continue;
    const float factor = ToFloat(dnorms[item]) / norm;
    dc[i] = FromFloat<T>(ToFloat(dc[i]) + factor * ToFloat(c[i]));
  }
}

// Warp per row: the norms of its groups (as GroupedL2NormKernel), then lane 0 selects the top k
// of the stored norms (TopKRow) and takes their softmax (as RowSoftmaxForward on the CPU:
// e_j = exp(v_j − max), y_j = e_j · (1 / Σ e)).
template <typename T>
__global__ void AoeGateKernel(const T* c, int64_t n, int64_t groups, int64_t width, int64_t k,
                              T* norms, T* top_values, int32_t* top_index, T* gate_weights,
                              DeviceErrorRecord* error) {
  const int lane = threadIdx.x % 32;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; row < n;
       row += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
    T* row_norms = norms + row * groups;
    for (int64_t g = 0; g < groups; ++g) {
      const double sum = GroupSumSquares(c + (row * groups + g) * width, width, lane);
      if (lane == 0) row_norms[g] = NormToT<T>(sqrt(sum));
    }
    if (lane == 0) {
      // Lane 0 reads back the norms it stored itself (program order: no fence needed).
      T* values = top_values + row * k;
      TopKRow<T>([row_norms](int64_t col) { return row_norms[col]; }, groups, k, values,
                 top_index + row * k, row * groups, error);
      float max = ToFloat(values[0]);
      for (int64_t j = 1; j < k; ++j) max = fmaxf(max, ToFloat(values[j]));
      float sum = 0.0f;
      for (int64_t j = 0; j < k; ++j) sum += expf(ToFloat(values[j]) - max);
      const float inv = 1.0f / sum;
      for (int64_t j = 0; j < k; ++j) {
        gate_weights[row * k + j] = FromFloat<T>(expf(ToFloat(values[j]) - max) * inv);
      }
    }
    __syncwarp();  // the whole warp enters the next row's shuffles together
  }
}

// ---- Permute / gather / combine -----------------------------------------------------------------

// position[p] for pair p, or −1 (reported) when it lies outside [0, pairs).
__device__ __forceinline__ int64_t CheckedPosition(const int32_t* position, int64_t p,
                                                   int64_t pairs, DeviceErrorRecord* error) {
  return CheckedIndex(position, p, pairs, DeviceErrorCode::kPositionOutOfRange, error);
}

// grouped[position[t, j], c] = x[t, c]; thread per (pair, column).
template <typename T>
__global__ void PermuteRowsKernel(const T* x, const int32_t* position, int64_t n, int64_t k,
                                  int64_t d, T* grouped, DeviceErrorRecord* error) {
  const int64_t pairs = n * k;
  AOETRON_GRID_STRIDE_LOOP(i, pairs * d) {
    const int64_t p = i / d, c = i % d;
    const int64_t pos = CheckedPosition(position, p, pairs, error);
    if (pos < 0) continue;
    grouped[pos * d + c] = x[(p / k) * d + c];
  }
}

// dx[t, c] += Σ_j dgrouped[position[t, j], c], j in order; thread per (token, column).
template <typename T>
__global__ void PermuteRowsBackwardKernel(const T* dgrouped, const int32_t* position, int64_t n,
                                          int64_t k, int64_t d, T* dx, DeviceErrorRecord* error) {
  const int64_t pairs = n * k;
  AOETRON_GRID_STRIDE_LOOP(i, n * d) {
    const int64_t t = i / d, c = i % d;
    float acc = ToFloat(dx[i]);
    for (int64_t j = 0; j < k; ++j) {
      const int64_t pos = CheckedPosition(position, t * k + j, pairs, error);
      if (pos >= 0) acc += ToFloat(dgrouped[pos * d + c]);
    }
    dx[i] = FromFloat<T>(acc);
  }
}

// grouped[position[t, j], i] = c[t, e·r + i], e = expert_index[t, j]; thread per (pair, i).
template <typename T>
__global__ void GatherExpertSlicesKernel(const T* c, const int32_t* expert_index,
                                         const int32_t* position, int64_t n, int64_t k,
                                         int64_t experts, int64_t r, T* grouped,
                                         DeviceErrorRecord* error) {
  const int64_t pairs = n * k;
  AOETRON_GRID_STRIDE_LOOP(i, pairs * r) {
    const int64_t p = i / r, col = i % r;
    const int64_t pos = CheckedPosition(position, p, pairs, error);
    const int64_t e = CheckedExpert(expert_index, p, experts, error);
    if (pos < 0 || e < 0) continue;
    grouped[pos * r + col] = c[((p / k) * experts + e) * r + col];
  }
}

// dc[t, e·r + i] += dgrouped[position[t, j], i] for j in order; thread per (token, i), so two
// pairs of one token naming the same expert add in order of j, as on the CPU.
template <typename T>
__global__ void GatherExpertSlicesBackwardKernel(const T* dgrouped, const int32_t* expert_index,
                                                 const int32_t* position, int64_t n, int64_t k,
                                                 int64_t experts, int64_t r, T* dc,
                                                 DeviceErrorRecord* error) {
  const int64_t pairs = n * k;
  AOETRON_GRID_STRIDE_LOOP(i, n * r) {
    const int64_t t = i / r, col = i % r;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t pos = CheckedPosition(position, t * k + j, pairs, error);
      const int64_t e = CheckedExpert(expert_index, t * k + j, experts, error);
      if (pos < 0 || e < 0) continue;
      T* dst = dc + (t * experts + e) * r + col;
      *dst = FromFloat<T>(ToFloat(*dst) + ToFloat(dgrouped[pos * r + col]));
    }
  }
}

// y[t, c] = Σ_j w[t, j] · expert_out[position[t, j], c]; thread per (token, column).
template <typename T>
__global__ void CombineRowsKernel(const T* expert_out, const int32_t* position, const T* weights,
                                  int64_t n, int64_t k, int64_t d, T* y, DeviceErrorRecord* error) {
  const int64_t pairs = n * k;
  AOETRON_GRID_STRIDE_LOOP(i, n * d) {
    const int64_t t = i / d, c = i % d;
    float acc = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t pos = CheckedPosition(position, t * k + j, pairs, error);
      if (pos < 0) continue;
      acc += ToFloat(weights[t * k + j]) * ToFloat(expert_out[pos * d + c]);
    }
    y[i] = FromFloat<T>(acc);
  }
}

// Warp per pair p = (t, j), row = position[p]:
//   d_expert_out[row, c] += w[p] · dy[t, c]     (each row has one pair: no conflicts)
//   dweights[p] += Σ_c dy[t, c] · expert_out[row, c]
template <typename T>
__global__ void CombineRowsBackwardKernel(const T* dy, const T* expert_out, const int32_t* position,
                                          const T* weights, int64_t n, int64_t k, int64_t d,
                                          T* d_expert_out, T* dweights, DeviceErrorRecord* error) {
  const int lane = threadIdx.x % 32;
  const int64_t pairs = n * k;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; p < pairs;
       p += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
    const int64_t row = CheckedPosition(position, p, pairs, error);
    if (row < 0) continue;  // uniform across the warp: every lane read the same entry
    const T* dyt = dy + (p / k) * d;
    const float w = ToFloat(weights[p]);
    float dot = 0.0f;
    for (int64_t c = lane; c < d; c += 32) {
      const float g = ToFloat(dyt[c]);
      dot += g * ToFloat(expert_out[row * d + c]);
      T* dst = d_expert_out + row * d + c;
      *dst = FromFloat<T>(ToFloat(*dst) + w * g);
    }
    dot = WarpSum(dot);
    if (lane == 0) dweights[p] = FromFloat<T>(ToFloat(dweights[p]) + dot);
  }
}

}  // namespace

void TopK(int device, DType dtype, const void* scores, int64_t n, int64_t m, int64_t k,
          void* values, int32_t* indices) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "TopK", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    TopKKernel<<<GridFor(n, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(scores), n, m, k, static_cast<T*>(values), indices,
        context.error_record());
  });
  AOETRON_CUDA_CHECK_LAUNCH("TopKKernel");
}

void TopKBackward(int device, DType dtype, const void* dvalues, const int32_t* indices, int64_t n,
                  int64_t m, int64_t k, void* dscores) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "TopKBackward", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    TopKBackwardKernel<<<GridFor(n, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(dvalues), indices, n, m, k, static_cast<T*>(dscores),
        context.error_record());
  });
  AOETRON_CUDA_CHECK_LAUNCH("TopKBackwardKernel");
}

void GroupedL2Norm(int device, DType dtype, const void* c, int64_t n, int64_t groups, int64_t width,
                   void* norms) {
  if (n * groups == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "GroupedL2Norm", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    GroupedL2NormKernel<<<GridFor(n * groups * 32, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(c), n, groups, width, static_cast<T*>(norms));
  });
  AOETRON_CUDA_CHECK_LAUNCH("GroupedL2NormKernel");
}

void GroupedL2NormBackward(int device, DType dtype, const void* dnorms, const void* c,
                           const void* norms, int64_t n, int64_t groups, int64_t width, void* dc) {
  const int64_t total = n * groups * width;
  if (total == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "GroupedL2NormBackward", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    GroupedL2NormBackwardKernel<<<GridFor(total, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(dnorms), static_cast<const T*>(c), static_cast<const T*>(norms), n,
        groups, width, static_cast<T*>(dc));
  });
  AOETRON_CUDA_CHECK_LAUNCH("GroupedL2NormBackwardKernel");
}

void AoeGate(int device, DType dtype, const void* c, int64_t n, int64_t groups, int64_t width,
             int64_t k, void* norms, void* top_values, int32_t* top_index, void* gate_weights) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "AoeGate", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    AoeGateKernel<<<GridFor(n * 32, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(c), n, groups, width, k, static_cast<T*>(norms),
        static_cast<T*>(top_values), top_index, static_cast<T*>(gate_weights),
        context.error_record());
  });
  AOETRON_CUDA_CHECK_LAUNCH("AoeGateKernel");
}

void PermuteRows(int device, DType dtype, const void* x, const int32_t* position, int64_t n,
                 int64_t k, int64_t d, void* grouped) {
  if (n * k * d == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "PermuteRows", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    PermuteRowsKernel<<<GridFor(n * k * d, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(x), position, n, k, d, static_cast<T*>(grouped),
        context.error_record());
  });
  AOETRON_CUDA_CHECK_LAUNCH("PermuteRowsKernel");
}

void PermuteRowsBackward(int device, DType dtype, const void* dgrouped, const int32_t* position,
                         int64_t n, int64_t k, int64_t d, void* dx) {
  if (n * d == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "PermuteRowsBackward", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    PermuteRowsBackwardKernel<<<GridFor(n * d, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(dgrouped), position, n, k, d, static_cast<T*>(dx),
        context.error_record());
  });
  AOETRON_CUDA_CHECK_LAUNCH("PermuteRowsBackwardKernel");
}

void GatherExpertSlices(int device, DType dtype, const void* c, const int32_t* expert_index,
                        const int32_t* position, int64_t n, int64_t k, int64_t experts, int64_t r,
                        void* grouped) {
  if (n * k * r == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "GatherExpertSlices", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    GatherExpertSlicesKernel<<<GridFor(n * k * r, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(c), expert_index, position, n, k, experts, r,
        static_cast<T*>(grouped), context.error_record());
  });
  AOETRON_CUDA_CHECK_LAUNCH("GatherExpertSlicesKernel");
}

void GatherExpertSlicesBackward(int device, DType dtype, const void* dgrouped,
                                const int32_t* expert_index, const int32_t* position, int64_t n,
                                int64_t k, int64_t experts, int64_t r, void* dc) {
  if (n * r == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "GatherExpertSlicesBackward", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    GatherExpertSlicesBackwardKernel<<<GridFor(n * r, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(dgrouped), expert_index, position, n, k, experts, r,
        static_cast<T*>(dc), context.error_record());
  });
  AOETRON_CUDA_CHECK_LAUNCH("GatherExpertSlicesBackwardKernel");
}

void CombineRows(int device, DType dtype, const void* expert_out, const int32_t* position,
                 const void* weights, int64_t n, int64_t k, int64_t d, void* y) {
  if (n * d == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "CombineRows", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    CombineRowsKernel<<<GridFor(n * d, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(expert_out), position, static_cast<const T*>(weights), n, k, d,
        static_cast<T*>(y), context.error_record());
  });
  AOETRON_CUDA_CHECK_LAUNCH("CombineRowsKernel");
}

void CombineRowsBackward(int device, DType dtype, const void* dy, const void* expert_out,
                         const int32_t* position, const void* weights, int64_t n, int64_t k,
                         int64_t d, void* d_expert_out, void* dweights) {
  if (n * k == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "CombineRowsBackward", [&](auto t_tag) {
    using T = typename decltype(t_tag)::type;
    CombineRowsBackwardKernel<<<GridFor(n * k * 32, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(dy), static_cast<const T*>(expert_out), position,
        static_cast<const T*>(weights), n, k, d, static_cast<T*>(d_expert_out),
        static_cast<T*>(dweights), context.error_record());
  });
  AOETRON_CUDA_CHECK_LAUNCH("CombineRowsBackwardKernel");
}

}  // namespace aoetron::ops::cuda
