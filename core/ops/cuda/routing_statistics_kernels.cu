// The routing arithmetic of core/ops/routing_statistics.h on the device, so a routed layer moves
// only its statistics to the host, not its [N, n] probabilities:
//   RoutingStatisticsPartials  per chunk of kStatChunk tokens (one block each): the pairs per
//       expert, Σ_t q_ti per expert and Σ_t H(q_t), in f64, tokens ascending inside the chunk;
//       the host adds the chunks' partials in chunk order (2n + 1 doubles per chunk come over).
//   TakeAlongRows              out[t, j] = x[t, index[t, j]]
//   AddRowVector               x[t, i] += row[i], in f64, rounded once
// An index outside [0, n) is a device error (kTopKIndexOutOfRange) and is skipped. Results are the
// same bits run to run; the statistics' f64 sums associate by chunk, unlike the CPU's single
// running sum (a difference in the last bits of an f64, far below what they feed).
#include "core/ops/cuda/kernel_util.cuh"
#include "core/ops/cuda/kernels.h"

namespace aoetron::ops::cuda {
namespace {

// Thread i of a block owns expert i (i < n, looping when n > blockDim) over the chunk's tokens in
// order; the entropy is a per-token value summed by thread 0 in token order.
template <typename T>
__global__ void RoutingPartialsKernel(const int32_t* top_index, const T* probs, int64_t tokens,
                                      int64_t n, int64_t k, double* partials,
                                      DeviceErrorRecord* error) {
  const int64_t chunk = blockIdx.x;
  const int64_t first = chunk * kStatChunk;
  const int64_t last = first + kStatChunk < tokens ? first + kStatChunk : tokens;
  double* out = partials + chunk * (2 * n + 1);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    double count = 0.0, mass = 0.0;
    for (int64_t t = first; t < last; ++t) {
      mass += static_cast<double>(ToFloat(probs[t * n + i]));
      for (int64_t j = 0; j < k; ++j) count += top_index[t * k + j] == i ? 1.0 : 0.0;
    }
    out[i] = count;
    out[n + i] = mass;
  }
  if (threadIdx.x == 0) {
    double entropy = 0.0;
    for (int64_t t = first; t < last; ++t) {
      for (int64_t i = 0; i < n; ++i) {
        const double p = static_cast<double>(ToFloat(probs[t * n + i]));
        if (p > 0) entropy -= p * log(p);
      }
      for (int64_t j = 0; j < k; ++j) {
        const int32_t e = top_index[t * k + j];
        if (e < 0 || e >= n)
          RaiseDeviceError(error, DeviceErrorCode::kTopKIndexOutOfRange, t * k + j);
      }
    }
    out[2 * n] = entropy;
  }
}

template <typename T>
__global__ void TakeAlongRowsKernel(const T* x, const int32_t* index, int64_t tokens, int64_t n,
                                    int64_t k, T* out, DeviceErrorRecord* error) {
  AOETRON_GRID_STRIDE_LOOP(p, tokens * k) {
    const int64_t t = p / k;
    const int32_t e = index[p];
    if (e < 0 || e >= n) {
      RaiseDeviceError(error, DeviceErrorCode::kTopKIndexOutOfRange, p);
      continue;
    }
    out[p] = x[t * n + e];
  }
}

template <typename T>
__global__ void AddRowVectorKernel(const double* row, int64_t tokens, int64_t n, T* x) {
  AOETRON_GRID_STRIDE_LOOP(p, tokens * n) {
    x[p] = FromFloat<T>(static_cast<float>(static_cast<double>(ToFloat(x[p])) + row[p % n]));
  }
}

}  // namespace

void RoutingStatisticsPartials(int device, DType dtype, const int32_t* top_index, const void* probs,
                               int64_t tokens, int64_t n, int64_t k, double* partials) {
  const int64_t chunks = (tokens + kStatChunk - 1) / kStatChunk;
  if (chunks == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "RoutingStatistics", [&](auto tag) {
    using T = typename decltype(tag)::type;
    RoutingPartialsKernel<T><<<static_cast<unsigned>(chunks), 128, 0, context.stream()>>>(
        top_index, static_cast<const T*>(probs), tokens, n, k, partials, context.error_record());
  });
  AOETRON_CUDA_CHECK_LAUNCH("RoutingPartialsKernel");
}

void TakeAlongRows(int device, DType dtype, const void* x, const int32_t* index, int64_t tokens,
                   int64_t n, int64_t k, void* out) {
  if (tokens * k == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "TakeAlongRows", [&](auto tag) {
    using T = typename decltype(tag)::type;
    TakeAlongRowsKernel<T><<<GridFor(tokens * k, context), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(x), index, tokens, n, k, static_cast<T*>(out),
        context.error_record());
  });
  AOETRON_CUDA_CHECK_LAUNCH("TakeAlongRowsKernel");
}

void AddRowVector(int device, DType dtype, const double* row, int64_t tokens, int64_t n, void* x) {
  if (tokens * n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "AddRowVector", [&](auto tag) {
    using T = typename decltype(tag)::type;
    AddRowVectorKernel<T><<<GridFor(tokens * n, context), kThreads, 0, context.stream()>>>(
        row, tokens, n, static_cast<T*>(x));
  });
  AOETRON_CUDA_CHECK_LAUNCH("AddRowVectorKernel");
}

}  // namespace aoetron::ops::cuda
