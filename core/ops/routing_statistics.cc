// CPU kernels inline (each is a single pass over [N, n] or [N, K]). CUDA:
// core/ops/cuda/routing_statistics_kernels.cu; only the statistics' per-chunk partials (2n + 1
// doubles per 256 tokens) come to the host.
#include "core/ops/routing_statistics.h"

#include <algorithm>
#include <cmath>

#include "core/device_transfer.h"
#include "core/ops/cuda/kernels.h"
#include "core/ops/f32_staging.h"
#include "core/ops/op_checks.h"

namespace aoetron::ops {
namespace {

using namespace internal;  // NOLINT: the op_checks helpers

// index: i32 [rows, K]. Its entries (in [0, columns)) are checked on the host by
// CheckIndexRange, on CUDA by the kernels as they read them.
void CheckIndexShape(const char* op, const char* name, const Tensor& index, int64_t rows) {
  CheckDType(op, name, index, DType::kI32);
  CheckRank(op, name, index, 2);
  AOETRON_CHECK(index.dim(0) == rows)
      << op << ": " << name << " " << index.DebugString() << " for " << rows << " rows";
}

}  // namespace

std::vector<double> RoutingStatistics(const Tensor& top_index, const Tensor& probs) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "RoutingStatistics";
  CheckOperands(kOp, {{"top_index", &top_index}, {"probs", &probs}});
  CheckFloat(kOp, "probs", probs);
  CheckRank(kOp, "probs", probs, 2);
  const int64_t tokens = probs.dim(0), n = probs.dim(1);
  CheckIndexShape(kOp, "top_index", top_index, tokens);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(probs)) {  // the kernel checks the indices (core/cuda/device_errors.h)
    const int64_t chunks = (tokens + cuda::kStatChunk - 1) / cuda::kStatChunk;
    Tensor partials =
        Tensor::Empty({std::max<int64_t>(chunks, 1), 2 * n + 1}, DType::kF64, probs.device());
    cuda::RoutingStatisticsPartials(CudaOrdinal(probs), probs.dtype(), top_index.data<int32_t>(),
                                    probs.raw_data(), tokens, n, top_index.dim(1),
                                    partials.data<double>());
    const Tensor host = OnHost(partials);
    std::vector<double> sums(2 * n + 2, 0.0);
    for (int64_t c = 0; c < chunks; ++c) {
      const double* row = host.data<double>() + c * (2 * n + 1);
      for (int64_t i = 0; i < 2 * n; ++i) sums[i] += row[i];
      sums[2 * n + 1] += row[2 * n];
    }
    sums[2 * n] = static_cast<double>(tokens);
    return sums;
  }
#endif
  if (probs.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage
    F32Staging f32;
    return RoutingStatistics(top_index, f32.In(probs));
  }
  CheckIndexRange(kOp, "top_index", top_index, n);
  std::vector<double> sums(2 * n + 2, 0.0);
  const int32_t* chosen = top_index.data<int32_t>();
  for (int64_t p = 0; p < top_index.numel(); ++p) sums[chosen[p]] += 1.0;
  double confidence_entropy = 0.0;
  DispatchFloat(probs.dtype(), [&]<typename T>() {
    const T* q = probs.data<T>();
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t i = 0; i < n; ++i) {
        const double p = q[t * n + i];
        sums[n + i] += p;
        if (p > 0) confidence_entropy -= p * std::log(p);
      }
    }
  });
  sums[2 * n] = static_cast<double>(tokens);
  sums[2 * n + 1] = confidence_entropy;
  return sums;
}

void TakeAlongRows(const Tensor& x, const Tensor& index, Tensor& out) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "TakeAlongRows";
  CheckOperands(kOp, {{"x", &x}, {"index", &index}, {"out", &out}});
  CheckFloat(kOp, "x", x);
  CheckRank(kOp, "x", x, 2);
  CheckDType(kOp, "out", out, x.dtype());
  CheckIndexShape(kOp, "index", index, x.dim(0));
  CheckShapeEq(kOp, "out", out, index.shape());
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(x)) {
    cuda::TakeAlongRows(CudaOrdinal(x), x.dtype(), x.raw_data(), index.data<int32_t>(), x.dim(0),
                        x.dim(1), index.dim(1), out.raw_data());
    return;
  }
#endif
  const int64_t tokens = x.dim(0), n = x.dim(1), k = index.dim(1);
  CheckIndexRange(kOp, "index", index, n);
  const int32_t* entry = index.data<int32_t>();
  auto gather = [&]<typename T>() {
    const T* in = x.data<T>();
    T* o = out.data<T>();
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t j = 0; j < k; ++j) o[t * k + j] = in[t * n + entry[t * k + j]];
    }
  };
  if (x.dtype() == DType::kF64) {
    gather.operator()<double>();
  } else if (x.dtype() == DType::kF32) {
    gather.operator()<float>();
  } else {
    gather.operator()<BFloat16>();  // a copy of the element, no arithmetic
  }
}

void AddRowVector(std::span<const double> row, Tensor& x) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "AddRowVector";
  CheckOperands(kOp, {{"x", &x}});
  CheckFloat(kOp, "x", x);
  CheckRank(kOp, "x", x, 2);
  const int64_t tokens = x.dim(0), n = x.dim(1);
  AOETRON_CHECK(static_cast<int64_t>(row.size()) == n)
      << kOp << ": " << row.size() << " row values for " << x.DebugString();
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(x)) {  // the n row values go over once
    Tensor device_row = Tensor::Empty({n}, DType::kF64, x.device());
    CopyAcrossDevices(Tensor::Wrap(const_cast<double*>(row.data()), {n}, DType::kF64), device_row);
    cuda::AddRowVector(CudaOrdinal(x), x.dtype(), device_row.data<double>(), tokens, n,
                       x.raw_data());
    return;
  }
#endif
  if (x.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    AddRowVector(row, f32.InOut(x));
    return;
  }
  DispatchFloat(x.dtype(), [&]<typename T>() {
    T* v = x.data<T>();
#pragma omp parallel for schedule(static) if (tokens * n >= (int64_t{1} << 15))
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t i = 0; i < n; ++i) v[t * n + i] += row[i];
    }
  });
}

}  // namespace aoetron::ops
