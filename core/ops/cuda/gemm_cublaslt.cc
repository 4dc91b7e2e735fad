// GEMM on CUDA through cuBLASLt (the contract is core/ops/gemm.h).
//
// Row-major to column-major. cuBLASLt is column-major; a row-major [R, C] matrix with leading
// dimension C is the column-major [C, R] matrix, its transpose, at the same address. So the
// row-major product C = op(A)·op(B) is computed as the column-major product
//     Cᵀ [N, M] = op(B)ᵀ [N, K] · op(A)ᵀ [K, M]
// with cuBLASLt's first operand our B and its second our A:
//   our B [K, N] (not transposed) is column-major [N, K], ld N: used as is (OP_N);
//   our B [N, K] (trans_b) is column-major [K, N], ld K: transposed (OP_T);
//   our A [M, K] (not transposed) is column-major [K, M], ld K: OP_N;
//   our A [K, M] (trans_a) is column-major [M, K], ld M: OP_T;
//   C [M, N] is column-major [N, M], ld N.
//
// Precision: f32 runs CUBLAS_COMPUTE_32F (true fp32: no TF32, for parity with the CPU); bf16 runs
// bf16 operands with CUBLAS_COMPUTE_32F accumulation and f32 alpha/beta, C stored bf16 or, for
// mixed precision's f32 weight gradients and routing scores, f32.
//
// Plans. cuBLASLt's heuristic query is slow (tens of µs) and an MoE step multiplies each
// expert's block of data-dependent height, so a plan is cached per SHAPE CLASS: (dtypes,
// transposes, operand alignments, and each of M, N, K rounded up to a power of two). A call
// builds the three matrix layouts for its exact shape (host-only calls, ~µs) and runs the class's
// algorithm; should cuBLASLt refuse it for this exact shape (an algorithm may depend on sizes), the
// call falls back to a heuristic for the exact shape, cached separately. So after the first step a
// GEMM is one cublasLtMatmul whatever the experts' loads. Alignments are part of the key because
// Tensor::Rows views may start anywhere, and an algorithm chosen for 256-byte aligned operands may
// not run on others.
// Each device has its own handle, a 32 MiB workspace (the size NVIDIA suggests for Hopper) and
// plan cache. Thread safety: the caches are guarded by a mutex; a call enqueues on the compute
// stream of `device`.
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>

#include "core/check.h"
#include "core/cuda/cuda_check.h"
#include "core/cuda/device_context.h"
#include "core/cuda/device_memory.h"
#include "core/ops/cuda/kernels.h"

namespace aoetron::ops::cuda {
namespace {

using aoetron::cuda::DeviceContext;

constexpr size_t kWorkspaceBytes = size_t{32} << 20;

// Largest power of two ≤ 256 dividing the address: what cuBLASLt may assume about an operand.
uint32_t Alignment(const void* ptr) {
  const auto address = reinterpret_cast<uintptr_t>(ptr);
  uint32_t alignment = 256;
  while (alignment > 1 && address % alignment != 0) alignment /= 2;
  return alignment;
}

// (dtype, c_dtype, trans_a, trans_b, M, N, K, alignment of A, B, C): M, N, K exact or rounded up
// to a power of two (a shape class).
using PlanKey =
    std::tuple<DType, DType, bool, bool, int64_t, int64_t, int64_t, uint32_t, uint32_t, uint32_t>;

struct Plan {
  cublasLtMatmulDesc_t operation = nullptr;
  cublasLtMatmulAlgo_t algo{};
};

// The three matrix layouts of one exact shape (first = our B, second = our A, result = our C).
struct Layouts {
  cublasLtMatrixLayout_t first = nullptr, second = nullptr, result = nullptr;
  ~Layouts() {
    if (first != nullptr) cublasLtMatrixLayoutDestroy(first);
    if (second != nullptr) cublasLtMatrixLayoutDestroy(second);
    if (result != nullptr) cublasLtMatrixLayoutDestroy(result);
  }
};

struct DeviceGemmState {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::map<PlanKey, Plan> class_plans;  // by shape class
  std::map<PlanKey, Plan> exact_plans;  // fallbacks, by exact shape
};

std::mutex g_mutex;
std::map<int, DeviceGemmState> g_states;  // never destroyed (handles outlive static destruction)

DeviceGemmState& StateFor(int device) {
  DeviceGemmState& state = g_states[device];
  if (state.handle == nullptr) {
    CUBLAS_CHECK(cublasLtCreate(&state.handle));
    state.workspace = aoetron::cuda::AllocateDeviceMemory(kWorkspaceBytes);
  }
  return state;
}

int64_t ShapeClass(int64_t x) {
  int64_t c = 1;
  while (c < x) c *= 2;
  return c;
}

cudaDataType_t CudaType(DType dtype) { return dtype == DType::kBF16 ? CUDA_R_16BF : CUDA_R_32F; }

// Column-major layouts of the row-major problem (see the file comment).
void MakeLayouts(DType dtype, DType c_dtype, bool trans_a, bool trans_b, int64_t m, int64_t n,
                 int64_t k, Layouts& layouts) {
  const uint64_t first_rows = trans_b ? k : n, first_cols = trans_b ? n : k;
  const uint64_t second_rows = trans_a ? m : k, second_cols = trans_a ? k : m;
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&layouts.first, CudaType(dtype), first_rows, first_cols,
                                          static_cast<int64_t>(first_rows)));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&layouts.second, CudaType(dtype), second_rows,
                                          second_cols, static_cast<int64_t>(second_rows)));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&layouts.result, CudaType(c_dtype), n, m, n));
}

// A plan for `key`'s shape (its M, N, K as given: exact or a class's representative).
Plan MakePlan(DeviceGemmState& state, const PlanKey& key) {
  const auto [dtype, c_dtype, trans_a, trans_b, m, n, k, align_a, align_b, align_c] = key;
  Plan plan;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.operation, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_first = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.operation, CUBLASLT_MATMUL_DESC_TRANSA,
                                              &op_first, sizeof(op_first)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.operation, CUBLASLT_MATMUL_DESC_TRANSB,
                                              &op_second, sizeof(op_second)));
  Layouts layouts;
  MakeLayouts(dtype, c_dtype, trans_a, trans_b, m, n, k, layouts);

  cublasLtMatmulPreference_t preference = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
  const uint64_t workspace = kWorkspaceBytes;
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof(workspace)));
  // cuBLASLt's A is our B, its B our A; C and D are both our C.
  const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> alignments[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_b},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_a},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_c},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_c}};
  for (const auto& [attribute, value] : alignments) {
    CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(preference, attribute, &value, sizeof(value)));
  }
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(state.handle, plan.operation, layouts.first,
                                              layouts.second, layouts.result, layouts.result,
                                              preference, 1, &result, &returned));
  CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(preference));
  AOETRON_CHECK(returned > 0) << "Gemm (cuBLASLt): no algorithm for " << DTypeName(dtype) << " → "
                              << DTypeName(c_dtype) << " M=" << m << " N=" << n << " K=" << k
                              << " trans_a=" << trans_a << " trans_b=" << trans_b
                              << " alignments A/B/C " << align_a << "/" << align_b << "/"
                              << align_c;
  plan.algo = result.algo;
  return plan;
}

const Plan& CachedPlan(DeviceGemmState& state, std::map<PlanKey, Plan>& plans, const PlanKey& key) {
  auto found = plans.find(key);
  if (found != plans.end()) return found->second;
  return plans.emplace(key, MakePlan(state, key)).first->second;
}

}  // namespace

void Gemm(int device, DType dtype, DType c_dtype, bool trans_a, bool trans_b, int64_t m, int64_t n,
          int64_t k, float alpha, const void* a, const void* b, float beta, void* c) {
  AOETRON_CHECK((dtype == DType::kF32 || dtype == DType::kBF16) &&
                (c_dtype == dtype || c_dtype == DType::kF32))
      << "Gemm (CUDA): operands f32 or bf16 and C of their dtype or f32, got " << DTypeName(dtype)
      << " → " << DTypeName(c_dtype);
  if (m == 0 || n == 0) return;
  DeviceContext& context = DeviceContext::Get(device);
  if (k == 0 || alpha == 0.0f) {
    // C = beta · C without reading A or B (BLAS semantics); beta = 0 ignores C's contents.
    if (beta == 0.0f) {
      CUDA_CHECK(cudaMemsetAsync(c, 0, static_cast<size_t>(m * n) * SizeOf(c_dtype),
                                 context.stream()));  // +0.0 in f32 and bf16
    } else if (beta != 1.0f) {
      Scale(device, c_dtype, c, m * n, beta);
    }
    return;
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  DeviceGemmState& state = StateFor(device);
  const uint32_t align_a = Alignment(a), align_b = Alignment(b), align_c = Alignment(c);
  const PlanKey class_key{dtype,         c_dtype,       trans_a, trans_b, ShapeClass(m),
                          ShapeClass(n), ShapeClass(k), align_a, align_b, align_c};
  Layouts layouts;
  MakeLayouts(dtype, c_dtype, trans_a, trans_b, m, n, k, layouts);
  auto run = [&](const Plan& plan) {
    return cublasLtMatmul(state.handle, plan.operation, &alpha, b, layouts.first, a, layouts.second,
                          &beta, c, layouts.result, c, layouts.result, &plan.algo, state.workspace,
                          kWorkspaceBytes, context.stream());
  };
  const cublasStatus_t status = run(CachedPlan(state, state.class_plans, class_key));
  if (status == CUBLAS_STATUS_SUCCESS) return;
  // The class's algorithm does not run this exact shape: the exact shape's own plan.
  AOETRON_CHECK(status == CUBLAS_STATUS_NOT_SUPPORTED || status == CUBLAS_STATUS_INVALID_VALUE)
      << "Gemm (cuBLASLt): cublasLtMatmul failed with status " << static_cast<int>(status);
  const PlanKey exact_key{dtype, c_dtype, trans_a, trans_b, m, n, k, align_a, align_b, align_c};
  CUBLAS_CHECK(run(CachedPlan(state, state.exact_plans, exact_key)));
}

}  // namespace aoetron::ops::cuda
