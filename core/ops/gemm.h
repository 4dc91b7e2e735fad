// General matrix multiply on row-major matrices.
#pragma once

#include "core/tensor.h"

namespace aoetron::ops {

// C = alpha · op(A) · op(B) + beta · C, where op(X) is X or Xᵀ.
//   A: [M, K] (or [K, M] when trans_a), B: [K, N] (or [N, K] when trans_b), C: [M, N].
// Tensors of rank > 2 are read as matrices with all leading dimensions folded into rows.
// f32 goes to the BLAS library (oneDNN on the CPU, cuBLASLt on CUDA); f64 runs a plain
// reference loop meant for tests only. beta = 0 ignores C's old contents (NaNs included).
void Gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c,
          float alpha = 1.0f, float beta = 0.0f);

}  // namespace aoetron::ops
