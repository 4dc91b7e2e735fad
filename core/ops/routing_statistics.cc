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

// index: i32 [rows, K] (host memory) with entries in [0, columns).
void CheckIndex(const char* op, const Tensor& index, int64_t rows, int64_t columns) {
  CheckRank(op, "index", index, 2);
  AOETRON_CHECK(index.dim(0) == rows)
      << op << ": index " << index.DebugString() << " for " << rows << " rows";
  CheckIndexRange(op, "index", index, columns);
}

}  // namespace

std::vector<double> RoutingStatistics(const Tensor& top_index, const Tensor& probs) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "RoutingStatistics";
  CheckOperands(kOp, {{"top_index", &top_index}, {"probs", &probs}});
  CheckRank(kOp, "probs", probs, 2);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(probs)) {  // the kernel checks the indices (core/cuda/device_errors.h)
    CheckDType(kOp, "top_index", top_index, DType::kI32);
    CheckRank(kOp, "top_index", top_index, 2);
    AOETRON_CHECK(top_index.dim(0) == probs.dim(0))
        << kOp << ": top_index " << top_index.DebugString() << " for " << probs.DebugString();
    CheckFloat(kOp, "probs", probs);
    const int64_t tokens = probs.dim(0), n = probs.dim(1);
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
  const int64_t tokens = probs.dim(0), n = probs.dim(1);
  const Tensor index = OnHost(top_index);
  const Tensor q_host = OnHost(probs);
  CheckIndex(kOp, index, tokens, n);
  std::vector<double> sums(2 * n + 2, 0.0);
  const int32_t* chosen = index.data<int32_t>();
  for (int64_t p = 0; p < index.numel(); ++p) sums[chosen[p]] += 1.0;
  double confidence_entropy = 0.0;
  DispatchFloat(q_host.dtype(), [&]<typename T>() {
    const T* q = q_host.data<T>();
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
  CheckShapeEq(kOp, "out", out, index.shape());
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(x)) {
    CheckDType(kOp, "index", index, DType::kI32);
    CheckRank(kOp, "index", index, 2);
    AOETRON_CHECK(index.dim(0) == x.dim(0))
        << kOp << ": index " << index.DebugString() << " for " << x.DebugString();
    cuda::TakeAlongRows(CudaOrdinal(x), x.dtype(), x.raw_data(), index.data<int32_t>(), x.dim(0),
                        x.dim(1), index.dim(1), out.raw_data());
    return;
  }
#endif
  const Tensor host_x = OnHost(x), host_index = OnHost(index);
  const int64_t tokens = x.dim(0), n = x.dim(1);
  CheckIndex(kOp, host_index, tokens, n);
  const int64_t k = index.dim(1);
  Tensor host_out = out.device().host_memory() ? out : Tensor::Empty(out.shape(), out.dtype());
  const int32_t* entry = host_index.data<int32_t>();
  auto gather = [&]<typename T>() {
    const T* in = host_x.data<T>();
    T* o = host_out.data<T>();
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
  if (!out.device().host_memory()) CopyAcrossDevices(host_out, out);
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
  Tensor host = OnHost(x);
  DispatchFloat(host.dtype(), [&]<typename T>() {
    T* v = host.data<T>();
#pragma omp parallel for schedule(static) if (tokens * n >= (int64_t{1} << 15))
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t i = 0; i < n; ++i) v[t * n + i] += row[i];
    }
  });
  if (!x.device().host_memory()) CopyAcrossDevices(host, x);
}

}  // namespace aoetron::ops
