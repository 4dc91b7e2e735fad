// CPU kernels inline (single passes over [N, m] with m the expert count, a few hundred at most).
// CUDA: core/ops/cuda/router_score_kernels.cu. bf16 operands are staged through f32
// (core/ops/f32_staging.h); the routed FFN keeps its scores in f32 anyway.
#include "core/ops/router_scores.h"

#include <algorithm>
#include <cmath>

#include "core/ops/cuda/kernels.h"
#include "core/ops/elementwise.h"
#include "core/ops/f32_staging.h"
#include "core/ops/float_visit.h"
#include "core/ops/op_checks.h"

namespace aoetron::ops {
namespace {

using namespace internal;  // NOLINT: the op_checks helpers

// first: [N, m] float; every other operand the same dtype and shape.
void CheckRowOperands(const char* op, Operand first, std::initializer_list<Operand> rest) {
  CheckFloat(op, first.name, *first.tensor);
  CheckRank(op, first.name, *first.tensor, 2);
  for (const Operand& operand : rest) {
    CheckDType(op, operand.name, *operand.tensor, first.tensor->dtype());
    CheckShapeEq(op, operand.name, *operand.tensor, first.tensor->shape());
  }
}

// lse: [N] of x's dtype.
void CheckLse(const char* op, const Tensor& x, const Tensor& lse) {
  CheckDType(op, "lse", lse, x.dtype());
  CheckShapeEq(op, "lse", lse, Shape({x.dim(0)}));
}

}  // namespace

void Sigmoid(const Tensor& x, Tensor& y) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "Sigmoid";
  CheckOperands(kOp, {{"x", &x}, {"y", &y}});
  CheckRowOperands(kOp, {"x", &x}, {{"y", &y}});
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(x)) {
    cuda::Sigmoid(CudaOrdinal(x), x.dtype(), x.raw_data(), x.numel(), y.raw_data());
    return;
  }
#endif
  if (x.dtype() == DType::kBF16) {
    F32Staging f32;
    Sigmoid(f32.In(x), f32.Out(y));
    return;
  }
  DispatchFloat(x.dtype(), [&]<typename T>() {
    const T* in = x.data<T>();
    T* out = y.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) out[i] = T(1) / (T(1) + std::exp(-in[i]));
  });
}

void SigmoidBackward(const Tensor& dy, const Tensor& y, Tensor& dx) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "SigmoidBackward";
  CheckOperands(kOp, {{"dy", &dy}, {"y", &y}, {"dx", &dx}});
  CheckRowOperands(kOp, {"y", &y}, {{"dy", &dy}, {"dx", &dx}});
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(y)) {
    cuda::SigmoidBackward(CudaOrdinal(y), y.dtype(), dy.raw_data(), y.raw_data(), y.numel(),
                          dx.raw_data());
    return;
  }
#endif
  if (y.dtype() == DType::kBF16) {
    F32Staging f32;
    SigmoidBackward(f32.In(dy), f32.In(y), f32.InOut(dx));
    return;
  }
  DispatchFloat(y.dtype(), [&]<typename T>() {
    const T *g = dy.data<T>(), *s = y.data<T>();
    T* out = dx.data<T>();
    for (int64_t i = 0; i < y.numel(); ++i) out[i] += g[i] * s[i] * (T(1) - s[i]);
  });
}

void RowNormalize(const Tensor& x, Tensor& y) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "RowNormalize";
  CheckOperands(kOp, {{"x", &x}, {"y", &y}});
  CheckRowOperands(kOp, {"x", &x}, {{"y", &y}});
  const int64_t rows = x.dim(0), m = x.dim(1);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(x)) {
    cuda::RowNormalize(CudaOrdinal(x), x.dtype(), x.raw_data(), rows, m, y.raw_data());
    return;
  }
#endif
  if (x.dtype() == DType::kBF16) {
    F32Staging f32;
    RowNormalize(f32.In(x), f32.Out(y));
    return;
  }
  DispatchFloat(x.dtype(), [&]<typename T>() {
    for (int64_t t = 0; t < rows; ++t) {
      const T* in = x.data<T>() + t * m;
      T* out = y.data<T>() + t * m;
      T sum = 0;
      for (int64_t i = 0; i < m; ++i) sum += in[i];
      for (int64_t i = 0; i < m; ++i) out[i] = in[i] / sum;
    }
  });
}

void RowNormalizeBackward(const Tensor& dy, const Tensor& y, const Tensor& x, Tensor& dx) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "RowNormalizeBackward";
  CheckOperands(kOp, {{"dy", &dy}, {"y", &y}, {"x", &x}, {"dx", &dx}});
  CheckRowOperands(kOp, {"x", &x}, {{"dy", &dy}, {"y", &y}, {"dx", &dx}});
  const int64_t rows = x.dim(0), m = x.dim(1);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(x)) {
    cuda::RowNormalizeBackward(CudaOrdinal(x), x.dtype(), dy.raw_data(), y.raw_data(), x.raw_data(),
                               rows, m, dx.raw_data());
    return;
  }
#endif
  if (x.dtype() == DType::kBF16) {
    F32Staging f32;
    RowNormalizeBackward(f32.In(dy), f32.In(y), f32.In(x), f32.InOut(dx));
    return;
  }
  DispatchFloat(x.dtype(), [&]<typename T>() {
    for (int64_t t = 0; t < rows; ++t) {
      const T *g = dy.data<T>() + t * m, *q = y.data<T>() + t * m, *in = x.data<T>() + t * m;
      T* out = dx.data<T>() + t * m;
      T sum = 0, dot = 0;
      for (int64_t i = 0; i < m; ++i) sum += in[i];
      for (int64_t i = 0; i < m; ++i) dot += g[i] * q[i];
      for (int64_t i = 0; i < m; ++i) out[i] += (g[i] - dot) / sum;
    }
  });
}

double RowLogSumExp(const Tensor& x, Tensor& lse) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "RowLogSumExp";
  CheckOperands(kOp, {{"x", &x}, {"lse", &lse}});
  CheckRowOperands(kOp, {"x", &x}, {});
  CheckLse(kOp, x, lse);
  const int64_t rows = x.dim(0), m = x.dim(1);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(x)) {
    cuda::RowLogSumExp(CudaOrdinal(x), x.dtype(), x.raw_data(), rows, m, lse.raw_data());
    return SumSquares(lse);
  }
#endif
  if (x.dtype() == DType::kBF16) {
    F32Staging f32;
    return RowLogSumExp(f32.In(x), f32.Out(lse));
  }
  DispatchFloat(x.dtype(), [&]<typename T>() {
    for (int64_t t = 0; t < rows; ++t) {
      const T* in = x.data<T>() + t * m;
      T top = in[0];
      for (int64_t i = 1; i < m; ++i) top = std::max(top, in[i]);
      T sum = 0;
      for (int64_t i = 0; i < m; ++i) sum += std::exp(in[i] - top);
      lse.data<T>()[t] = top + std::log(sum);
    }
  });
  return SumSquares(lse);
}

void LogSumExpSquareBackward(const Tensor& x, const Tensor& lse, double scale, Tensor& dx) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "LogSumExpSquareBackward";
  CheckOperands(kOp, {{"x", &x}, {"lse", &lse}, {"dx", &dx}});
  CheckRowOperands(kOp, {"x", &x}, {{"dx", &dx}});
  CheckLse(kOp, x, lse);
  const int64_t rows = x.dim(0), m = x.dim(1);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(x)) {
    cuda::LogSumExpSquareBackward(CudaOrdinal(x), x.dtype(), x.raw_data(), lse.raw_data(), scale,
                                  rows, m, dx.raw_data());
    return;
  }
#endif
  if (x.dtype() == DType::kBF16) {
    F32Staging f32;
    LogSumExpSquareBackward(f32.In(x), f32.In(lse), scale, f32.InOut(dx));
    return;
  }
  DispatchFloat(x.dtype(), [&]<typename T>() {
    for (int64_t t = 0; t < rows; ++t) {
      const T* in = x.data<T>() + t * m;
      const T l = lse.data<T>()[t];
      const T factor = static_cast<T>(scale * 2.0) * l;
      T* out = dx.data<T>() + t * m;
      for (int64_t i = 0; i < m; ++i) out[i] += factor * std::exp(in[i] - l);
    }
  });
}

}  // namespace aoetron::ops
