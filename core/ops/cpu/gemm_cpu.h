// CPU kernels behind ops::Gemm. Callers (core/ops/gemm.cc) have already checked shapes, dtypes
// and devices; these functions trust their arguments.
//
// All matrices are row-major and dense: a [rows, cols] matrix has leading dimension cols.
// A is [M, K] ([K, M] when trans_a), B is [K, N] ([N, K] when trans_b), C is [M, N].
// Both compute C = alpha · op(A) · op(B) + beta · C. With beta = 0, C's old contents are never
// read, so NaN or Inf left in C by a previous use cannot leak into the result. With K = 0 or
// alpha = 0, A and B are not read and C becomes beta · C (BLAS semantics).
//
// Threads: both kernels use OpenMP and follow omp_set_num_threads(). Called from inside an
// OpenMP parallel region they run on the calling thread only (no nested team, no
// oversubscription); see docs/gemm.md for the measurement.
#pragma once

#include <cstdint>

namespace aoetron::ops::cpu {

// f32 through oneDNN's dnnl_sgemm (a JIT-compiled kernel for the running CPU, no environment
// variable needed).
void GemmF32(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
             const float* a, const float* b, float beta, float* c);

// f64 reference: an obviously correct loop for finite-difference tests, not for training.
void GemmF64(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
             const double* a, const double* b, double beta, double* c);

}  // namespace aoetron::ops::cpu
