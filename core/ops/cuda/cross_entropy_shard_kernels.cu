// The vocabulary-parallel cross-entropy's three stages on the device (core/ops/cross_entropy.h;
// parallel/tensor_parallel.cc runs the all-reduces between them). One block per row of the
// [n, V_s] shard, f32 arithmetic on f32 or bf16 logits, the row statistics in f64 as on the CPU:
//   RowMax   m_local = max_j x_j
//   Sums     Z = Σ_j e^(x_j − m) (f64 block sum of f32 exps; stored over x when backward),
//            x_target = x[target − vocab_begin] when this shard owns the target, else 0
//   Finish   loss = m + log Z − x_target (f64, stored f32);
//            backward: x_j ← scale · e_j / Z, minus scale at the owned target
// A negative target: Z = x_target = 0, loss 0 and a zero gradient row. A target ≥ vocab_size is a
// device error (kTargetOutOfRange, detail: the row) and its row is left alone.
#include "core/ops/cuda/kernel_util.cuh"
#include "core/ops/cuda/kernels.h"

namespace aoetron::ops::cuda {
namespace {

unsigned RowBlocks(int64_t rows) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(rows, 65535)));
}

template <typename T>
__global__ void ShardRowMaxKernel(const T* logits, int64_t n, int64_t local_vocab,
                                  double* row_max) {
  __shared__ float scratch[32];
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const T* x = logits + row * local_vocab;
    float max = -INFINITY;
    for (int64_t j = threadIdx.x; j < local_vocab; j += blockDim.x) max = fmaxf(max, ToFloat(x[j]));
    max = BlockMax(max, scratch);
    if (threadIdx.x == 0) row_max[row] = static_cast<double>(max);
  }
}

template <typename T>
__global__ void ShardSumsKernel(T* logits, const int32_t* targets, int64_t n, int64_t local_vocab,
                                int64_t vocab_begin, int64_t vocab_size, const double* row_max,
                                bool store_exp, double* z, double* x_target,
                                DeviceErrorRecord* error) {
  __shared__ double scratch[32];
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    T* x = logits + row * local_vocab;
    const int32_t target = targets[row];
    if (target >= vocab_size) {
      if (threadIdx.x == 0) RaiseDeviceError(error, DeviceErrorCode::kTargetOutOfRange, row);
      continue;
    }
    if (target < 0) {
      if (threadIdx.x == 0) z[row] = x_target[row] = 0.0;
      continue;
    }
    const int64_t local_target = static_cast<int64_t>(target) - vocab_begin;
    const bool owned = local_target >= 0 && local_target < local_vocab;
    // Read before any thread overwrites the row with its exps.
    const double target_logit = owned ? static_cast<double>(ToFloat(x[local_target])) : 0.0;
    __syncthreads();
    const float max = static_cast<float>(row_max[row]);
    float partial = 0.0f;
    for (int64_t j = threadIdx.x; j < local_vocab; j += blockDim.x) {
      const float e = expf(ToFloat(x[j]) - max);
      if (store_exp) x[j] = FromFloat<T>(e);
      partial += e;
    }
    const double total = BlockSum(static_cast<double>(partial), scratch);
    if (threadIdx.x == 0) {
      z[row] = total;
      x_target[row] = target_logit;
    }
  }
}

template <typename T>
__global__ void ShardFinishKernel(T* logits, const int32_t* targets, int64_t n, int64_t local_vocab,
                                  int64_t vocab_begin, const double* row_max, const double* z,
                                  const double* x_target, bool backward, double grad_scale,
                                  float* losses) {
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    T* x = logits + row * local_vocab;
    const int32_t target = targets[row];
    if (target < 0) {
      if (threadIdx.x == 0) losses[row] = 0.0f;
      if (backward) {
        for (int64_t j = threadIdx.x; j < local_vocab; j += blockDim.x) x[j] = FromFloat<T>(0.0f);
      }
      continue;
    }
    if (threadIdx.x == 0) {
      losses[row] = static_cast<float>(row_max[row] + log(z[row]) - x_target[row]);
    }
    if (!backward) continue;
    const float g = static_cast<float>(grad_scale);
    const float scale = static_cast<float>(static_cast<double>(g) / z[row]);
    const int64_t local_target = static_cast<int64_t>(target) - vocab_begin;
    for (int64_t j = threadIdx.x; j < local_vocab; j += blockDim.x) {
      // Two roundings, as on the CPU: no fused multiply-subtract at the target.
      const float p = __fmul_rn(ToFloat(x[j]), scale);
      x[j] = FromFloat<T>(j == local_target ? p - g : p);
    }
  }
}

}  // namespace

void CrossEntropyShardRowMax(int device, DType dtype, const void* logits, int64_t n,
                             int64_t local_vocab, double* row_max) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "CrossEntropyShardRowMax", [&](auto tag) {
    using T = typename decltype(tag)::type;
    ShardRowMaxKernel<T><<<RowBlocks(n), kThreads, 0, context.stream()>>>(
        static_cast<const T*>(logits), n, local_vocab, row_max);
  });
  AOETRON_CUDA_CHECK_LAUNCH("ShardRowMaxKernel");
}

void CrossEntropyShardSums(int device, DType dtype, void* logits, const int32_t* targets, int64_t n,
                           int64_t local_vocab, int64_t vocab_begin, int64_t vocab_size,
                           const double* row_max, bool store_exp, double* z, double* x_target) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "CrossEntropyShardSums", [&](auto tag) {
    using T = typename decltype(tag)::type;
    ShardSumsKernel<T><<<RowBlocks(n), kThreads, 0, context.stream()>>>(
        static_cast<T*>(logits), targets, n, local_vocab, vocab_begin, vocab_size, row_max,
        store_exp, z, x_target, context.error_record());
  });
  AOETRON_CUDA_CHECK_LAUNCH("ShardSumsKernel");
}

void CrossEntropyShardFinish(int device, DType dtype, void* logits, const int32_t* targets,
                             int64_t n, int64_t local_vocab, int64_t vocab_begin,
                             const double* row_max, const double* z, const double* x_target,
                             bool backward, double grad_scale, float* losses) {
  if (n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  DispatchFloat(dtype, "CrossEntropyShardFinish", [&](auto tag) {
    using T = typename decltype(tag)::type;
    ShardFinishKernel<T><<<RowBlocks(n), kThreads, 0, context.stream()>>>(
        static_cast<T*>(logits), targets, n, local_vocab, vocab_begin, row_max, z, x_target,
        backward, grad_scale, losses);
  });
  AOETRON_CUDA_CHECK_LAUNCH("ShardFinishKernel");
}

}  // namespace aoetron::ops::cuda
