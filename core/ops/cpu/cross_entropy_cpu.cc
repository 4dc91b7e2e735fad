// Softmax cross-entropy over a vocabulary (logits: [n, V], targets: [n]).
//
// Per row, with m = max_j x_j and Z = Σ_j e^(x_j − m):
//   loss = logsumexp(x) − x_target = m + log Z − x_target
//   dloss/dx_j = softmax(x)_j − [j = target] = e^(x_j − m) / Z − [j = target]
// ForwardBackward writes grad_scale · dloss/dx over the logits in the same visit of the row:
//   pass 1  m = max_j x_j                     (reads the row)
//   pass 2  e_j = e^(x_j − m) in place, Z = Σ e_j
//   pass 3  x_j = grad_scale · e_j / Z, then x_target −= grad_scale
// A row is V·4 bytes (200 KB at V = 50k), so passes 2 and 3 find it in L2; each exponential is
// computed once. Rows run in parallel; every reduction is inside one row, hence deterministic.
// Z is summed in float over blocks of kSumBlock values (vectorised) and the block sums in double,
// which keeps the relative error of log Z near f32 rounding even at V = 50k.
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/ops/cpu/kernels.h"
#include "core/ops/cpu/vec_math.h"

namespace aoetron::ops::cpu {
namespace {

constexpr int64_t kSumBlock = 1024;

// Written as a select, not std::max: GCC keeps std::max's argument-order semantics and emits a
// scalar vmaxss chain (8× slower here); the select vectorises. A NaN logit is skipped here and
// then propagates through e^(x − m) into Z, so the loss still comes out NaN.
template <typename T>
T RowMax(const T* x, int64_t vocab) {
  T max = x[0];
#pragma omp simd reduction(max : max)
  for (int64_t j = 0; j < vocab; ++j) max = x[j] > max ? x[j] : max;
  return max;
}

// Z = Σ e^(x_j − max); when `e` is not null, also stores e^(x_j − max) there (e may be x).
template <typename T>
double SumExp(const T* x, int64_t vocab, T max, T* e) {
  double total = 0.0;
  for (int64_t begin = 0; begin < vocab; begin += kSumBlock) {
    const int64_t end = std::min(vocab, begin + kSumBlock);
    T sum = 0;
    if (e == nullptr) {
#pragma omp simd reduction(+ : sum)
      for (int64_t j = begin; j < end; ++j) sum += Exp<T>(x[j] - max);
    } else {
#pragma omp simd reduction(+ : sum)
      for (int64_t j = begin; j < end; ++j) {
        const T ej = Exp<T>(x[j] - max);
        e[j] = ej;
        sum += ej;
      }
    }
    total += static_cast<double>(sum);
  }
  return total;
}

}  // namespace

template <typename T>
void CrossEntropyForward(const T* logits, const int32_t* targets, int64_t n, int64_t vocab,
                         T* losses) {
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    const int32_t target = targets[row];
    if (target < 0) {
      losses[row] = 0;
      continue;
    }
    const T* x = logits + row * vocab;
    const T max = RowMax(x, vocab);
    const double z = SumExp(x, vocab, max, static_cast<T*>(nullptr));
    losses[row] =
        static_cast<T>(static_cast<double>(max) + std::log(z) - static_cast<double>(x[target]));
  }
}

template <typename T>
void CrossEntropyForwardBackward(T* logits, const int32_t* targets, int64_t n, int64_t vocab,
                                 T grad_scale, T* losses) {
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    T* x = logits + row * vocab;
    const int32_t target = targets[row];
    if (target < 0) {
      losses[row] = 0;
      std::fill(x, x + vocab, T(0));
      continue;
    }
    const T x_target = x[target];
    const T max = RowMax(x, vocab);
    const double z = SumExp(x, vocab, max, x);
    losses[row] =
        static_cast<T>(static_cast<double>(max) + std::log(z) - static_cast<double>(x_target));
    const T scale = static_cast<T>(static_cast<double>(grad_scale) / z);
#pragma omp simd
    for (int64_t j = 0; j < vocab; ++j) x[j] *= scale;
    x[target] -= grad_scale;
  }
}

// The sharded stages: the same RowMax and SumExp on a row's shard; the max and the sums are
// combined across shards (all-reduces) between the stages by parallel/tensor_parallel.cc.
template <typename T>
void CrossEntropyShardRowMax(const T* logits, int64_t n, int64_t local_vocab, double* row_max) {
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    row_max[row] = static_cast<double>(RowMax(logits + row * local_vocab, local_vocab));
  }
}

template <typename T>
void CrossEntropyShardSums(T* logits, const int32_t* targets, int64_t n, int64_t local_vocab,
                           int64_t vocab_begin, const double* row_max, bool store_exp, double* z,
                           double* x_target) {
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    T* x = logits + row * local_vocab;
    if (targets[row] < 0) {
      z[row] = 0.0;
      x_target[row] = 0.0;
      continue;
    }
    const int64_t local_target = static_cast<int64_t>(targets[row]) - vocab_begin;
    const bool owned = local_target >= 0 && local_target < local_vocab;
    x_target[row] = owned ? static_cast<double>(x[local_target]) : 0.0;
    z[row] = SumExp(x, local_vocab, static_cast<T>(row_max[row]), store_exp ? x : nullptr);
  }
}

template <typename T>
void CrossEntropyShardFinish(T* logits, const int32_t* targets, int64_t n, int64_t local_vocab,
                             int64_t vocab_begin, const double* row_max, const double* z,
                             const double* x_target, bool backward, double grad_scale, T* losses) {
  // grad_scale is rounded to T first, as the fused kernel receives it.
  const T scale_t = static_cast<T>(grad_scale);
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    T* x = logits + row * local_vocab;
    if (targets[row] < 0) {
      losses[row] = 0;
      if (backward) std::fill(x, x + local_vocab, T(0));
      continue;
    }
    losses[row] = static_cast<T>(row_max[row] + std::log(z[row]) - x_target[row]);
    if (!backward) continue;
    const T scale = static_cast<T>(static_cast<double>(scale_t) / z[row]);
#pragma omp simd
    for (int64_t j = 0; j < local_vocab; ++j) x[j] *= scale;
    const int64_t local_target = static_cast<int64_t>(targets[row]) - vocab_begin;
    if (local_target >= 0 && local_target < local_vocab) x[local_target] -= scale_t;
  }
}

#define AOETRON_INSTANTIATE_SHARD_STAGES(T)                                                   \
  template void CrossEntropyShardRowMax<T>(const T*, int64_t, int64_t, double*);              \
  template void CrossEntropyShardSums<T>(T*, const int32_t*, int64_t, int64_t, int64_t,       \
                                         const double*, bool, double*, double*);              \
  template void CrossEntropyShardFinish<T>(T*, const int32_t*, int64_t, int64_t, int64_t,     \
                                           const double*, const double*, const double*, bool, \
                                           double, T*);
AOETRON_INSTANTIATE_SHARD_STAGES(float)
AOETRON_INSTANTIATE_SHARD_STAGES(double)
#undef AOETRON_INSTANTIATE_SHARD_STAGES

template void CrossEntropyForward<float>(const float*, const int32_t*, int64_t, int64_t, float*);
template void CrossEntropyForward<double>(const double*, const int32_t*, int64_t, int64_t, double*);
template void CrossEntropyForwardBackward<float>(float*, const int32_t*, int64_t, int64_t, float,
                                                 float*);
template void CrossEntropyForwardBackward<double>(double*, const int32_t*, int64_t, int64_t, double,
                                                  double*);

}  // namespace aoetron::ops::cpu
