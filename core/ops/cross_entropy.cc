#include "core/ops/cross_entropy.h"

#include "core/ops/cpu/kernels.h"
#include "core/ops/cuda/kernels.h"
#include "core/ops/op_checks.h"

namespace aoetron::ops {
namespace {

using namespace internal;  // NOLINT: the op_checks helpers

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
  CheckDType(op, "losses", losses, StatisticsDType(logits.dtype()));
  CheckShapeEq(op, "losses", losses, {n});
  if (OnCuda(targets)) return;  // the kernel checks the targets (core/cuda/device_errors.h)
  const int32_t* target = targets.data<int32_t>();
  for (int64_t t = 0; t < n; ++t) {
    AOETRON_CHECK(target[t] < vocab) << op << ": targets[" << t << "] = " << target[t]
                                     << " is outside the vocabulary [0, " << vocab << ")";
  }
}

}  // namespace

void CrossEntropyForward(const Tensor& logits, const Tensor& targets, Tensor& losses) {
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
  DispatchFloat(logits.dtype(), [&]<typename T>() {
    cpu::CrossEntropyForward<T>(logits.data<T>(), targets.data<int32_t>(), logits.dim(0),
                                logits.dim(1), losses.data<T>());
  });
}

void CrossEntropyForwardBackward(Tensor& logits, const Tensor& targets, double grad_scale,
                                 Tensor& losses) {
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
  DispatchFloat(logits.dtype(), [&]<typename T>() {
    cpu::CrossEntropyForwardBackward<T>(logits.data<T>(), targets.data<int32_t>(), logits.dim(0),
                                        logits.dim(1), static_cast<T>(grad_scale),
                                        losses.data<T>());
  });
}

}  // namespace aoetron::ops
