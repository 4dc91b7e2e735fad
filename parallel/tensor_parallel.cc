#include "parallel/tensor_parallel.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "core/check.h"
#include "core/ops/cpu/vec_math.h"
#include "core/ops/float_visit.h"

namespace aoetron::parallel {
namespace {

// As in the single-process kernel (core/ops/cpu/cross_entropy_cpu.cc): Z is summed in T over
// blocks of this many values and the block sums in double.
constexpr int64_t kSumBlock = 1024;

void CheckHostFloat(const char* op, const char* name, const Tensor& t) {
  AOETRON_CHECK(t.defined() && t.device().is_cpu())
      << op << ": " << name << " must be a host tensor, got " << t.DebugString();
  AOETRON_CHECK(t.dtype() == DType::kF32 || t.dtype() == DType::kF64)
      << op << ": " << name << " must be f32 or f64, got " << t.DebugString();
}

void CheckIds(const char* op, const char* name, const Tensor& ids, int64_t n, int64_t vocab_size,
              bool negative_allowed) {
  AOETRON_CHECK(ids.device().is_cpu() && ids.dtype() == DType::kI32 && ids.rank() == 1 &&
                ids.dim(0) == n)
      << op << ": " << name << " must be host i32 [" << n << "], got " << ids.DebugString();
  const int32_t* id = ids.data<int32_t>();
  for (int64_t t = 0; t < n; ++t) {
    AOETRON_CHECK(id[t] < vocab_size && (negative_allowed || id[t] >= 0))
        << op << ": " << name << "[" << t << "] = " << id[t] << " is outside the vocabulary [0, "
        << vocab_size << ")";
  }
}

template <typename T>
T RowMax(const T* x, int64_t count) {
  T max = x[0];
#pragma omp simd reduction(max : max)
  for (int64_t j = 0; j < count; ++j) max = x[j] > max ? x[j] : max;
  return max;
}

// Σ e^(x_j − max) over one row shard; stores e^(x_j − max) into e when e is not null (e may be x).
template <typename T>
double SumExp(const T* x, int64_t count, T max, T* e) {
  double total = 0.0;
  for (int64_t begin = 0; begin < count; begin += kSumBlock) {
    const int64_t end = std::min(count, begin + kSumBlock);
    T sum = 0;
    if (e == nullptr) {
#pragma omp simd reduction(+ : sum)
      for (int64_t j = begin; j < end; ++j) sum += ops::cpu::Exp<T>(x[j] - max);
    } else {
#pragma omp simd reduction(+ : sum)
      for (int64_t j = begin; j < end; ++j) {
        const T ej = ops::cpu::Exp<T>(x[j] - max);
        e[j] = ej;
        sum += ej;
      }
    }
    total += static_cast<double>(sum);
  }
  return total;
}

// The three passes of the vocabulary-parallel cross-entropy (see the header):
//   1. m = max over tp of the local row maxima
//   2. e = e^(x − m) (stored over x when backward), local Z and the owned target logit;
//      summed over tp
//   3. loss = m + log Z − x_target; backward: x = scale · e / Z, minus scale at the target
template <typename T>
void CrossEntropyShard(Communicator& tp, T* x, int64_t n, int64_t local_vocab,
                       const int32_t* target, int64_t vocab_begin, bool backward, double grad_scale,
                       T* losses, ActivationArena& scratch) {
  const ActivationArena::Position mark = scratch.Mark();
  Tensor row_max = scratch.Allocate({n}, DType::kF64);
  Tensor sums = scratch.Allocate({2, n}, DType::kF64);  // [Z; x_target]
  double* m = row_max.data<double>();
  double* z = sums.data<double>();
  double* x_target = z + n;

  // 1. The global row maximum (exact: a max of T values is one of them).
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    m[row] = static_cast<double>(RowMax(x + row * local_vocab, local_vocab));
  }
  if (tp.size() > 1) tp.AllReduce(row_max, ReduceOp::kMax);

    // 2. This shard's share of Z and of the target logit.
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    T* x_row = x + row * local_vocab;
    const int64_t local_target = static_cast<int64_t>(target[row]) - vocab_begin;
    if (target[row] < 0) {
      z[row] = 0.0;
      x_target[row] = 0.0;
      continue;
    }
    const bool owned = local_target >= 0 && local_target < local_vocab;
    x_target[row] = owned ? static_cast<double>(x_row[local_target]) : 0.0;
    z[row] = SumExp(x_row, local_vocab, static_cast<T>(m[row]), backward ? x_row : nullptr);
  }
  if (tp.size() > 1) tp.AllReduce(sums, ReduceOp::kSum);

  // 3. Loss, and the gradient over this rank's columns. grad_scale is rounded to T first, as
  // the single-process kernel receives it.
  const T scale_t = static_cast<T>(grad_scale);
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    T* x_row = x + row * local_vocab;
    if (target[row] < 0) {
      losses[row] = 0;
      if (backward) std::fill(x_row, x_row + local_vocab, T(0));
      continue;
    }
    losses[row] = static_cast<T>(m[row] + std::log(z[row]) - x_target[row]);
    if (!backward) continue;
    const T scale = static_cast<T>(static_cast<double>(scale_t) / z[row]);
#pragma omp simd
    for (int64_t j = 0; j < local_vocab; ++j) x_row[j] *= scale;
    const int64_t local_target = static_cast<int64_t>(target[row]) - vocab_begin;
    if (local_target >= 0 && local_target < local_vocab) x_row[local_target] -= scale_t;
  }
  scratch.Rewind(mark);
}

void CrossEntropy(const char* op, Communicator& tp, const Tensor& logits_shard,
                  const Tensor& targets, int64_t vocab_begin, int64_t vocab_size, bool backward,
                  double grad_scale, Tensor& losses, ActivationArena& scratch) {
  CheckHostFloat(op, "logits_shard", logits_shard);
  AOETRON_CHECK(logits_shard.rank() == 2 && logits_shard.dim(1) >= 1)
      << op << ": logits_shard must be [N, V/tp], got " << logits_shard.DebugString();
  const int64_t n = logits_shard.dim(0), local_vocab = logits_shard.dim(1);
  AOETRON_CHECK(vocab_begin >= 0 && vocab_begin + local_vocab <= vocab_size)
      << op << ": shard [" << vocab_begin << ", " << vocab_begin + local_vocab
      << ") outside the vocabulary [0, " << vocab_size << ")";
  CheckIds(op, "targets", targets, n, vocab_size, /*negative_allowed=*/true);
  CheckHostFloat(op, "losses", losses);
  AOETRON_CHECK(losses.dtype() == logits_shard.dtype() && losses.rank() == 1 && losses.dim(0) == n)
      << op << ": losses must be [" << n << "] of the logits' dtype, got " << losses.DebugString();
  // The logits are read-only in forward; only the backward pass writes through this pointer.
  VisitFloatData(losses, [&](auto* loss) {
    using T = std::remove_pointer_t<decltype(loss)>;
    T* x = const_cast<T*>(logits_shard.data<T>());
    CrossEntropyShard<T>(tp, x, n, local_vocab, targets.data<int32_t>(), vocab_begin, backward,
                         grad_scale, loss, scratch);
  });
}

}  // namespace

void CopyToTensorParallelRegionBackward(Communicator& tp, Tensor partial_grad) {
  if (tp.size() > 1) tp.AllReduce(partial_grad, ReduceOp::kSum);
}

void ReduceFromTensorParallelRegionForward(Communicator& tp, Tensor partial_output) {
  if (tp.size() > 1) tp.AllReduce(partial_output, ReduceOp::kSum);
}

void VocabParallelEmbeddingForward(Communicator& tp, const Tensor& ids, const Tensor& table_shard,
                                   int64_t vocab_begin, int64_t vocab_size, Tensor& out) {
  constexpr const char* kOp = "VocabParallelEmbeddingForward";
  CheckHostFloat(kOp, "table_shard", table_shard);
  CheckHostFloat(kOp, "out", out);
  AOETRON_CHECK(table_shard.rank() == 2) << kOp << ": table_shard " << table_shard.DebugString();
  const int64_t local_vocab = table_shard.dim(0), d = table_shard.dim(1);
  const int64_t n = ids.numel();
  CheckIds(kOp, "ids", ids, n, vocab_size, /*negative_allowed=*/false);
  AOETRON_CHECK(out.dtype() == table_shard.dtype() && out.rank() == 2 && out.dim(0) == n &&
                out.dim(1) == d)
      << kOp << ": out must be [" << n << ", " << d << "], got " << out.DebugString();
  const int32_t* id = ids.data<int32_t>();
  VisitFloatData(out, [&](auto* rows) {
    using T = std::remove_pointer_t<decltype(rows)>;
    const T* table = table_shard.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < n; ++t) {
      const int64_t local = static_cast<int64_t>(id[t]) - vocab_begin;
      T* row = rows + t * d;
      if (local >= 0 && local < local_vocab) {
        std::memcpy(row, table + local * d, d * sizeof(T));
      } else {
        std::fill(row, row + d, T(0));
      }
    }
  });
  // Every row has exactly one non-zero contribution, so the sum is exact.
  ReduceFromTensorParallelRegionForward(tp, out);
}

void VocabParallelEmbeddingBackward(const Tensor& ids, const Tensor& dout, int64_t vocab_begin,
                                    Tensor& dtable_shard) {
  constexpr const char* kOp = "VocabParallelEmbeddingBackward";
  CheckHostFloat(kOp, "dout", dout);
  CheckHostFloat(kOp, "dtable_shard", dtable_shard);
  AOETRON_CHECK(dtable_shard.rank() == 2 && dout.rank() == 2 &&
                dout.dim(1) == dtable_shard.dim(1) && dout.dtype() == dtable_shard.dtype())
      << kOp << ": dout " << dout.DebugString() << ", dtable_shard " << dtable_shard.DebugString();
  const int64_t n = dout.dim(0), d = dout.dim(1), local_vocab = dtable_shard.dim(0);
  AOETRON_CHECK(ids.device().is_cpu() && ids.dtype() == DType::kI32 && ids.numel() == n)
      << kOp << ": ids " << ids.DebugString();
  const int32_t* id = ids.data<int32_t>();
  VisitFloatData(dtable_shard, [&](auto* table) {
    using T = std::remove_pointer_t<decltype(table)>;
    const T* grad = dout.data<T>();
    // Threads own column ranges; tokens are visited in order, so sums are deterministic.
#pragma omp parallel
    {
      const int threads = omp_get_num_threads(), thread = omp_get_thread_num();
      const int64_t begin = d * thread / threads, end = d * (thread + 1) / threads;
      for (int64_t t = 0; t < n; ++t) {
        const int64_t local = static_cast<int64_t>(id[t]) - vocab_begin;
        if (local < 0 || local >= local_vocab) continue;
        T* row = table + local * d;
        const T* g = grad + t * d;
        for (int64_t j = begin; j < end; ++j) row[j] += g[j];
      }
    }
  });
}

void VocabParallelCrossEntropyForward(Communicator& tp, const Tensor& logits_shard,
                                      const Tensor& targets, int64_t vocab_begin,
                                      int64_t vocab_size, Tensor& losses,
                                      ActivationArena& scratch) {
  CrossEntropy("VocabParallelCrossEntropyForward", tp, logits_shard, targets, vocab_begin,
               vocab_size, /*backward=*/false, 0.0, losses, scratch);
}

void VocabParallelCrossEntropyForwardBackward(Communicator& tp, Tensor& logits_shard,
                                              const Tensor& targets, int64_t vocab_begin,
                                              int64_t vocab_size, double grad_scale, Tensor& losses,
                                              ActivationArena& scratch) {
  CrossEntropy("VocabParallelCrossEntropyForwardBackward", tp, logits_shard, targets, vocab_begin,
               vocab_size, /*backward=*/true, grad_scale, losses, scratch);
}

}  // namespace aoetron::parallel
