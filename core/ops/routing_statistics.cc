// CPU kernels inline (each is a single pass over [N, n] or [N, K]). A CUDA tensor is copied to
// the host and back: correct, but a round trip per routed layer — see docs/cuda.md.
#include "core/ops/routing_statistics.h"

#include <cmath>

#include "core/device_transfer.h"
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
