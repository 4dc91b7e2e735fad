#include "core/ops/cross_entropy.h"

#include "core/ops/cpu/kernels.h"
#include "core/ops/cuda/kernels.h"
#include "core/ops/f32_staging.h"
#include "core/ops/op_checks.h"

namespace aoetron::ops {
namespace {

using namespace internal;  // NOLINT: the op_checks helpers

// Host memory only (CUDA kernels check targets themselves).
void CheckTargetsBelow(const char* op, const Tensor& targets, int64_t vocab) {
  const int32_t* target = targets.data<int32_t>();
  for (int64_t t = 0; t < targets.numel(); ++t) {
    AOETRON_CHECK(target[t] < vocab) << op << ": targets[" << t << "] = " << target[t]
                                     << " is outside the vocabulary [0, " << vocab << ")";
  }
}

void CheckCrossEntropyOperands(const char* op, const Tensor& logits, const Tensor& targets,
                               const Tensor& losses) {
  CheckOperands(op, {{"logits", &logits}, {"targets", &targets}, {"losses", &losses}});
  CheckFloat(op, "logits", logits);
  CheckRank(op, "logits", logits, 2);
  AOETRON_CHECK(logits.dim(1) >= 1)
      << op << ": logits need a vocabulary of at least one, got " << logits.DebugString();
  const int64_t n = logits.dim(0), vocab = logits.dim(1);
  CheckDType(op, "targets", targets, DType::kI32);
  CheckShapeEq(op, "targets", targets, {n});
  CheckDType(op, "losses", losses, AccumulationDType(logits.dtype()));
  CheckShapeEq(op, "losses", losses, {n});
  if (OnCuda(targets)) return;  // the kernel checks the targets (core/cuda/device_errors.h)
  CheckTargetsBelow(op, targets, vocab);
}

// logits_shard [N, V_s], targets i32 [N], and the f64 row statistics of the sharded stages (on
// one device, which CheckOperands of the caller's full operand list has checked).
void CheckShardOperands(const char* op, const Tensor& logits_shard, const Tensor& targets,
                        const Tensor& row_max) {
  CheckFloat(op, "logits_shard", logits_shard);
  CheckRank(op, "logits_shard", logits_shard, 2);
  AOETRON_CHECK(logits_shard.dim(1) >= 1)
      << op << ": logits_shard needs at least one column, got " << logits_shard.DebugString();
  const int64_t n = logits_shard.dim(0);
  CheckDType(op, "targets", targets, DType::kI32);
  CheckShapeEq(op, "targets", targets, {n});
  CheckDType(op, "row_max", row_max, DType::kF64);
  CheckShapeEq(op, "row_max", row_max, {n});
}

}  // namespace

void CrossEntropyShardRowMax(const Tensor& logits_shard, Tensor& row_max) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "CrossEntropyShardRowMax";
  CheckOperands(kOp, {{"logits_shard", &logits_shard}, {"row_max", &row_max}});
  CheckFloat(kOp, "logits_shard", logits_shard);
  CheckRank(kOp, "logits_shard", logits_shard, 2);
  CheckDType(kOp, "row_max", row_max, DType::kF64);
  CheckShapeEq(kOp, "row_max", row_max, {logits_shard.dim(0)});
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(logits_shard)) {
    cuda::CrossEntropyShardRowMax(CudaOrdinal(logits_shard), logits_shard.dtype(),
                                  logits_shard.raw_data(), logits_shard.dim(0), logits_shard.dim(1),
                                  row_max.data<double>());
    return;
  }
#endif
  if (logits_shard.dtype() ==
      DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    CrossEntropyShardRowMax(f32.In(logits_shard), row_max);
    return;
  }
  DispatchFloat(logits_shard.dtype(), [&]<typename T>() {
    cpu::CrossEntropyShardRowMax<T>(logits_shard.data<T>(), logits_shard.dim(0),
                                    logits_shard.dim(1), row_max.data<double>());
  });
}

void CrossEntropyShardSums(Tensor& logits_shard, const Tensor& targets, int64_t vocab_begin,
                           int64_t vocab_size, const Tensor& row_max, bool store_exp,
                           Tensor& sums) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "CrossEntropyShardSums";
  CheckOperands(kOp, {{"logits_shard", &logits_shard},
                      {"targets", &targets},
                      {"row_max", &row_max},
                      {"sums", &sums}});
  CheckShardOperands(kOp, logits_shard, targets, row_max);
  CheckDType(kOp, "sums", sums, DType::kF64);
  CheckShapeEq(kOp, "sums", sums, {2, logits_shard.dim(0)});
  const int64_t n = logits_shard.dim(0);
  AOETRON_CHECK(vocab_begin >= 0 && vocab_begin + logits_shard.dim(1) <= vocab_size)
      << kOp << ": shard [" << vocab_begin << ", " << vocab_begin + logits_shard.dim(1)
      << ") outside the vocabulary [0, " << vocab_size << ")";
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(logits_shard)) {  // the kernel checks the targets (core/cuda/device_errors.h)
    double* z = sums.data<double>();
    cuda::CrossEntropyShardSums(CudaOrdinal(logits_shard), logits_shard.dtype(),
                                logits_shard.raw_data(), targets.data<int32_t>(), n,
                                logits_shard.dim(1), vocab_begin, vocab_size,
                                row_max.data<double>(), store_exp, z, z + n);
    return;
  }
#endif
  CheckTargetsBelow(kOp, targets, vocab_size);
  if (logits_shard.dtype() ==
      DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    CrossEntropyShardSums(f32.InOut(logits_shard), targets, vocab_begin, vocab_size, row_max,
                          store_exp, sums);
    return;
  }
  DispatchFloat(logits_shard.dtype(), [&]<typename T>() {
    double* z = sums.data<double>();
    cpu::CrossEntropyShardSums<T>(logits_shard.data<T>(), targets.data<int32_t>(), n,
                                  logits_shard.dim(1), vocab_begin, row_max.data<double>(),
                                  store_exp, z, z + n);
  });
}

void CrossEntropyShardFinish(Tensor& logits_shard, const Tensor& targets, int64_t vocab_begin,
                             const Tensor& row_max, const Tensor& sums, bool backward,
                             double grad_scale, Tensor& losses) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "CrossEntropyShardFinish";
  CheckOperands(kOp, {{"logits_shard", &logits_shard},
                      {"targets", &targets},
                      {"row_max", &row_max},
                      {"sums", &sums},
                      {"losses", &losses}});
  CheckShardOperands(kOp, logits_shard, targets, row_max);
  const int64_t n = logits_shard.dim(0);
  CheckDType(kOp, "sums", sums, DType::kF64);
  CheckShapeEq(kOp, "sums", sums, {2, n});
  CheckDType(kOp, "losses", losses, AccumulationDType(logits_shard.dtype()));
  CheckShapeEq(kOp, "losses", losses, {n});
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(logits_shard)) {
    AOETRON_CHECK(losses.dtype() == DType::kF32)
        << kOp << ": losses must be f32 on CUDA, got " << losses.DebugString();
    const double* z = sums.data<double>();
    cuda::CrossEntropyShardFinish(CudaOrdinal(logits_shard), logits_shard.dtype(),
                                  logits_shard.raw_data(), targets.data<int32_t>(), n,
                                  logits_shard.dim(1), vocab_begin, row_max.data<double>(), z,
                                  z + n, backward, grad_scale, losses.data<float>());
    return;
  }
#endif
  if (logits_shard.dtype() ==
      DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    CrossEntropyShardFinish(f32.InOut(logits_shard), targets, vocab_begin, row_max, sums, backward,
                            grad_scale, losses);
    return;
  }
  DispatchFloat(logits_shard.dtype(), [&]<typename T>() {
    const double* z = sums.data<double>();
    cpu::CrossEntropyShardFinish<T>(logits_shard.data<T>(), targets.data<int32_t>(), n,
                                    logits_shard.dim(1), vocab_begin, row_max.data<double>(), z,
                                    z + n, backward, grad_scale, losses.data<T>());
  });
}

void CrossEntropyForward(const Tensor& logits, const Tensor& targets, Tensor& losses) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "CrossEntropyForward";
  CheckCrossEntropyOperands(kOp, logits, targets, losses);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(logits)) {
    cuda::CrossEntropyForward(CudaOrdinal(logits), logits.dtype(), logits.raw_data(),
                              targets.data<int32_t>(), logits.dim(0), logits.dim(1),
                              losses.data<float>());
    return;
  }
#endif
  if (logits.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    CrossEntropyForward(f32.In(logits), targets, losses);
    return;
  }
  DispatchFloat(logits.dtype(), [&]<typename T>() {
    cpu::CrossEntropyForward<T>(logits.data<T>(), targets.data<int32_t>(), logits.dim(0),
                                logits.dim(1), losses.data<T>());
  });
}

void CrossEntropyForwardBackward(Tensor& logits, const Tensor& targets, double grad_scale,
                                 Tensor& losses) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "CrossEntropyForwardBackward";
  CheckCrossEntropyOperands(kOp, logits, targets, losses);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(logits)) {
    cuda::CrossEntropyForwardBackward(CudaOrdinal(logits), logits.dtype(), logits.raw_data(),
                                      targets.data<int32_t>(), logits.dim(0), logits.dim(1),
                                      grad_scale, losses.data<float>());
    return;
  }
#endif
  if (logits.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    CrossEntropyForwardBackward(f32.InOut(logits), targets, grad_scale, losses);
    return;
  }
  DispatchFloat(logits.dtype(), [&]<typename T>() {
    cpu::CrossEntropyForwardBackward<T>(logits.data<T>(), targets.data<int32_t>(), logits.dim(0),
                                        logits.dim(1), static_cast<T>(grad_scale),
                                        losses.data<T>());
  });
}

}  // namespace aoetron::ops
