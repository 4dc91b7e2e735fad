#include "core/ops/cpu/gemm_cpu.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/check.h"
#include "oneapi/dnnl/dnnl.h"

namespace aoetron::ops::cpu {
namespace {

// C = beta · C over `count` elements, for the cases where op(A)·op(B) contributes nothing
// (K = 0 or alpha = 0). beta = 0 writes zeros without reading C, so NaNs in C do not survive.
template <typename T>
void ScaleByBeta(int64_t count, T beta, T* c) {
  if (beta == T(0)) {
    std::memset(c, 0, static_cast<size_t>(count) * sizeof(T));  // all-zero bits are +0.0
  } else if (beta != T(1)) {
    for (int64_t i = 0; i < count; ++i) c[i] *= beta;
  }
}

}  // namespace

void GemmF32(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
             const float* a, const float* b, float beta, float* c) {
  if (m == 0 || n == 0) return;
  if (k == 0 || alpha == 0.0f) {
    ScaleByBeta(m * n, beta, c);  // dnnl_sgemm with K = 0 would leave NaNs in C for beta = 0
    return;
  }
  // dnnl_sgemm is row-major (unlike Fortran BLAS). Leading dimensions are the stored row
  // lengths: A is stored [M, K] or, transposed, [K, M]; B likewise; C is [M, N].
  // With beta = 0 it never reads C (BLAS semantics; tests/gemm/gemm_test.cc poisons C with NaN
  // over odd shapes and all transposes to hold it to that). Its threading runtime is OpenMP
  // (libgomp, the same runtime as ours): it uses omp_get_max_threads() threads, and one thread
  // when called inside a parallel region.
  const dnnl_status_t status = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha,
                                          a, trans_a ? m : k, b, trans_b ? k : n, beta, c, n);
  AOETRON_CHECK(status == dnnl_success)
      << "dnnl_sgemm failed with status " << static_cast<int>(status) << " for M=" << m
      << " N=" << n << " K=" << k << " trans_a=" << trans_a << " trans_b=" << trans_b;
}

void GemmF64(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
             const double* a, const double* b, double beta, double* c) {
  if (m == 0 || n == 0) return;
  if (k == 0 || alpha == 0.0) {
    ScaleByBeta(m * n, beta, c);
    return;
  }
  // op(B) copied once into a dense [K, N] matrix so that the innermost loop below walks
  // contiguous memory whatever trans_b is.
  std::vector<double> b_packed(static_cast<size_t>(k * n));
  for (int64_t p = 0; p < k; ++p) {
    for (int64_t j = 0; j < n; ++j) {
      b_packed[p * n + j] = trans_b ? b[j * k + p] : b[p * n + j];
    }
  }
  auto op_a = [&](int64_t i, int64_t p) { return trans_a ? a[p * m + i] : a[i * k + p]; };

  // C[i][j] = alpha · Σ_p op(A)[i][p] · op(B)[p][j] + beta · C[i][j].
  // The loops are tiled so that a [kDepthBlock, kColBlock] tile of op(B) (256 KiB) stays in
  // cache while a block of rows uses it. Tiling changes only the loop order, not the sum: every
  // C[i][j] still adds its K products in order p = 0, 1, …, K−1, as the plain triple loop
  // does, and each row belongs to one thread: the result does not depend on the thread count.
  constexpr int64_t kRowBlock = 32, kColBlock = 256, kDepthBlock = 128;
#pragma omp parallel for schedule(static)
  for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
    const int64_t i1 = std::min(m, i0 + kRowBlock);
    std::vector<double> sums(static_cast<size_t>((i1 - i0) * n), 0.0);
    for (int64_t j0 = 0; j0 < n; j0 += kColBlock) {
      const int64_t j1 = std::min(n, j0 + kColBlock);
      for (int64_t p0 = 0; p0 < k; p0 += kDepthBlock) {
        const int64_t p1 = std::min(k, p0 + kDepthBlock);
        for (int64_t i = i0; i < i1; ++i) {
          double* sum_row = &sums[(i - i0) * n];
          for (int64_t p = p0; p < p1; ++p) {
            const double a_ip = op_a(i, p);
            const double* b_row = &b_packed[p * n];
            for (int64_t j = j0; j < j1; ++j) sum_row[j] += a_ip * b_row[j];
          }
        }
      }
    }
    for (int64_t i = i0; i < i1; ++i) {
      const double* sum_row = &sums[(i - i0) * n];
      double* c_row = c + i * n;
      for (int64_t j = 0; j < n; ++j) {
        // beta = 0 must not read C: 0 · NaN would be NaN.
        c_row[j] = alpha * sum_row[j] + (beta == 0.0 ? 0.0 : beta * c_row[j]);
      }
    }
  }
}

}  // namespace aoetron::ops::cpu
