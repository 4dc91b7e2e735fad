// General matrix multiply on row-major matrices.
#pragma once

#include "core/tensor.h"

namespace aoetron::ops {

// C = alpha · op(A) · op(B) + beta · C, where op(X) is X or Xᵀ.
//   A: [M, K] (or [K, M] when trans_a), B: [K, N] (or [N, K] when trans_b), C: [M, N].
// Operands have rank ≥ 2; rank > 2 is read as a matrix with all leading dimensions folded into
// rows. f32 goes to the BLAS library (oneDNN on the CPU, cuBLASLt on CUDA); f64 runs a plain
// reference loop meant for tests only (CPU). On CUDA, bf16 operands are multiplied with f32
// accumulation and C is stored bf16; f32 runs in true fp32 (no TF32). beta = 0 ignores C's old
// contents (NaNs included); K = 0 or alpha = 0 makes C = beta · C without reading A or B (BLAS
// semantics). C must not overlap A or B. Views from Tensor::Rows are fine operands (every tensor is
// dense).
//
// Threads: the CPU kernels use OpenMP's thread count (omp_set_num_threads); a call made inside
// an OpenMP parallel region runs on the calling thread only. Exception to core/ops/README.md's
// thread-count independence: for some shapes (large K, small M·N) oneDNN splits K across
// threads, so f32 results can differ in the last bits between thread counts. At a fixed thread
// count they are reproducible bit for bit. The f64 loop is thread-count independent.
void Gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c,
          float alpha = 1.0f, float beta = 0.0f);

}  // namespace aoetron::ops
