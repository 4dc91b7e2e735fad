#include "core/ops/gemm.h"

#include <cstdint>

#include "core/ops/cpu/gemm_cpu.h"
#include "core/ops/cuda/kernels.h"
#include "core/ops/f32_staging.h"

namespace aoetron::ops {
namespace {

// A tensor of rank ≥ 2 read as a matrix: leading dimensions folded into rows.
struct MatrixShape {
  int64_t rows = 0;
  int64_t cols = 0;
};

MatrixShape AsMatrixShape(const Tensor& t, const char* operand) {
  AOETRON_CHECK(t.defined()) << "Gemm: operand " << operand << " is undefined";
  AOETRON_CHECK(t.rank() >= 2) << "Gemm: operand " << operand << " must have rank >= 2, got "
                               << t.DebugString();
  MatrixShape shape;
  shape.cols = t.dim(-1);
  shape.rows = 1;
  for (int i = 0; i + 1 < t.rank(); ++i) shape.rows *= t.dim(i);
  return shape;
}

bool Overlaps(const Tensor& x, const Tensor& y) {
  const char* x_begin = static_cast<const char*>(x.raw_data());
  const char* y_begin = static_cast<const char*>(y.raw_data());
  return x.nbytes() > 0 && y.nbytes() > 0 && x_begin < y_begin + y.nbytes() &&
         y_begin < x_begin + x.nbytes();
}

}  // namespace

void Gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c, float alpha,
          float beta) {
  const DeviceAccessScope kernel_access;
  const MatrixShape a_shape = AsMatrixShape(a, "A");
  const MatrixShape b_shape = AsMatrixShape(b, "B");
  const MatrixShape c_shape = AsMatrixShape(c, "C");

  // Mixed precision: bf16 A and B may write an f32 C (weight gradients, routing scores).
  AOETRON_CHECK(a.dtype() == b.dtype() &&
                (c.dtype() == a.dtype() || c.dtype() == AccumulationDType(a.dtype())))
      << "Gemm: A and B must share a dtype and C be of it (or f32 beside bf16), got A "
      << a.DebugString() << ", B " << b.DebugString() << ", C " << c.DebugString();
  AOETRON_CHECK(a.device() == b.device() && a.device() == c.device())
      << "Gemm: A, B and C must live on one device, got A " << a.DebugString() << ", B "
      << b.DebugString() << ", C " << c.DebugString();
  AOETRON_CHECK(!c.device().is_cuda() || CudaBackendBuilt())
      << "no CUDA kernel for Gemm in this build (built without CUDA): C is " << c.DebugString();

  // op(A) is [M, K], op(B) is [K, N], C is [M, N].
  const int64_t m = trans_a ? a_shape.cols : a_shape.rows;
  const int64_t k = trans_a ? a_shape.rows : a_shape.cols;
  const int64_t b_k = trans_b ? b_shape.cols : b_shape.rows;
  const int64_t n = trans_b ? b_shape.rows : b_shape.cols;
  AOETRON_CHECK(k == b_k) << "Gemm: inner dimensions differ: op(A) is [" << m << ", " << k
                          << "] (A " << a.DebugString() << (trans_a ? ", transposed" : "")
                          << "), op(B) is [" << b_k << ", " << n << "] (B " << b.DebugString()
                          << (trans_b ? ", transposed" : "") << ")";
  AOETRON_CHECK(c_shape.rows == m && c_shape.cols == n)
      << "Gemm: C must be [M, N] = [" << m << ", " << n << "] (A " << a.DebugString()
      << (trans_a ? " transposed" : "") << ", B " << b.DebugString()
      << (trans_b ? " transposed" : "") << "), got C " << c.DebugString();
  // The kernels write C while reading A and B; an overlap would silently corrupt the result.
  AOETRON_CHECK(!Overlaps(c, a) && !Overlaps(c, b))
      << "Gemm: C " << c.DebugString() << " overlaps an input (A " << a.DebugString() << ", B "
      << b.DebugString() << ")";

#ifdef AOETRON_WITH_CUDA
  if (c.device().kind == DeviceKind::kCuda) {
    AOETRON_CHECK(a.dtype() == DType::kF32 || a.dtype() == DType::kBF16)
        << "Gemm: dtype on CUDA must be f32 or bf16, got A " << a.DebugString();
    cuda::Gemm(c.device().index, a.dtype(), c.dtype(), trans_a, trans_b, m, n, k, alpha,
               a.raw_data(), b.raw_data(), beta, c.raw_data());
    return;
  }
#endif
  if (a.dtype() == DType::kBF16) {
    // bf16 on the CPU: A and B widened to f32 (exact), one f32 GEMM, C rounded once. oneDNN's
    // bf16 matmul (oneDNN 2.6, AVX512_BF16) measured slower on the MoE bench: a primitive per
    // shape compiles every new expert height (0.5× the widened path's tokens/s, 4× its memory),
    // runtime dimensions fall to a slow kernel (0.25×), and even the dense model's fixed shapes
    // ran at 0.75×; docs/training.md, "Precision".
    internal::F32Staging f32;
    Gemm(f32.In(a), trans_a, f32.In(b), trans_b, beta == 0.0f ? f32.Out(c) : f32.InOut(c), alpha,
         beta);
    return;
  }
  switch (c.dtype()) {
    case DType::kF32:
      cpu::GemmF32(trans_a, trans_b, m, n, k, alpha, a.data<float>(), b.data<float>(), beta,
                   c.data<float>());
      return;
    case DType::kF64:
      cpu::GemmF64(trans_a, trans_b, m, n, k, alpha, a.data<double>(), b.data<double>(), beta,
                   c.data<double>());
      return;
    default:
      AOETRON_CHECK(false) << "Gemm: dtype must be f32 or f64, got C " << c.DebugString();
  }
}

}  // namespace aoetron::ops
