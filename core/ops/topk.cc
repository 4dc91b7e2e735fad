#include "core/ops/topk.h"

#include "core/ops/cpu/kernels.h"
#include "core/ops/cuda/kernels.h"
#include "core/ops/f32_staging.h"
#include "core/ops/op_checks.h"

namespace aoetron::ops {
namespace {

using namespace internal;  // NOLINT: the op_checks helpers

}  // namespace

void TopK(const Tensor& scores, int64_t k, Tensor& values, Tensor& indices) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "TopK";
  CheckOperands(kOp, {{"scores", &scores}, {"values", &values}, {"indices", &indices}});
  CheckFloat(kOp, "scores", scores);
  CheckRank(kOp, "scores", scores, 2);
  const int64_t n = scores.dim(0), m = scores.dim(1);
  AOETRON_CHECK(1 <= k && k <= m) << kOp << ": k = " << k << " must lie in [1, " << m
                                  << "] for scores " << scores.DebugString();
  CheckDType(kOp, "values", values, scores.dtype());
  CheckShapeEq(kOp, "values", values, {n, k});
  CheckDType(kOp, "indices", indices, DType::kI32);
  CheckShapeEq(kOp, "indices", indices, {n, k});
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(scores)) {  // a NaN score is reported by the kernel (core/cuda/device_errors.h)
    cuda::TopK(CudaOrdinal(scores), scores.dtype(), scores.raw_data(), n, m, k, values.raw_data(),
               indices.data<int32_t>());
    return;
  }
#endif
  if (scores.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    TopK(f32.In(scores), k, f32.Out(values), indices);
    return;
  }
  DispatchFloat(scores.dtype(), [&]<typename T>() {
    cpu::TopK<T>(scores.data<T>(), n, m, k, values.data<T>(), indices.data<int32_t>());
  });
}

void TopKBackward(const Tensor& dvalues, const Tensor& indices, Tensor& dscores) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "TopKBackward";
  CheckOperands(kOp, {{"dvalues", &dvalues}, {"indices", &indices}, {"dscores", &dscores}});
  CheckFloat(kOp, "dscores", dscores);
  CheckRank(kOp, "dscores", dscores, 2);
  const int64_t n = dscores.dim(0), m = dscores.dim(1);
  CheckDType(kOp, "indices", indices, DType::kI32);
  CheckRank(kOp, "indices", indices, 2);
  AOETRON_CHECK(indices.dim(0) == n && indices.dim(1) >= 1 && indices.dim(1) <= m)
      << kOp << ": indices " << indices.DebugString() << " do not fit dscores "
      << dscores.DebugString();
  const int64_t k = indices.dim(1);
  CheckDType(kOp, "dvalues", dvalues, dscores.dtype());
  CheckShapeEq(kOp, "dvalues", dvalues, {n, k});
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(dscores)) {  // indices are checked by the kernel
    cuda::TopKBackward(CudaOrdinal(dscores), dscores.dtype(), dvalues.raw_data(),
                       indices.data<int32_t>(), n, m, k, dscores.raw_data());
    return;
  }
#endif
  if (dscores.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    TopKBackward(f32.In(dvalues), indices, f32.InOut(dscores));
    return;
  }
  const int32_t* idx = indices.data<int32_t>();
  for (int64_t i = 0; i < n * k; ++i) {
    AOETRON_CHECK(idx[i] >= 0 && idx[i] < m) << kOp << ": indices[" << i / k << ", " << i % k
                                             << "] = " << idx[i] << " is outside [0, " << m << ")";
  }
  DispatchFloat(dscores.dtype(), [&]<typename T>() {
    cpu::TopKBackward<T>(dvalues.data<T>(), idx, n, m, k, dscores.data<T>());
  });
}

}  // namespace aoetron::ops
