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
// expert's block of data-dependent height — M in forward and for dX, K for the weight gradient —
// so a plan is cached per SHAPE CLASS: (dtypes, transposes, pointer alignments, whether each
// leading dimension is a multiple of 16 bytes, N exact, and M and K rounded up to a power of two).
// A call builds the matrix layouts of its exact shape (host-only calls, ~µs). The first time an
// exact shape meets its class's algorithm, cublasLtMatmulAlgoCheck confirms the algorithm runs it
// within the workspace (the result is cached per exact shape); where it does not, the exact
// shape gets its own heuristic plan. So after the first step a GEMM is a map lookup and one
// cublasLtMatmul whatever the experts' loads.
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

// (dtype, c_dtype, trans_a, trans_b, M, N, K, alignment of A | leading-dimension flags << 16,
// alignment of B, alignment of C): M and K exact or rounded up to a power of two (a shape class).
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
  std::map<PlanKey, bool> class_runs;   // exact shape → its class's algorithm runs it
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
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_a & 0xffffu},  // (ld flags above)
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

// Whether the class's algorithm runs this exact problem (cublasLtMatmulAlgoCheck: layouts,
// alignment, workspace).
bool AlgoRuns(const DeviceGemmState& state, const Plan& plan, const Layouts& layouts) {
  cublasLtMatmulHeuristicResult_t result{};
  const cublasStatus_t status =
      cublasLtMatmulAlgoCheck(state.handle, plan.operation, layouts.first, layouts.second,
                              layouts.result, layouts.result, &plan.algo, &result);
  return status == CUBLAS_STATUS_SUCCESS && result.workspaceSize <= kWorkspaceBytes;
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
  // Leading dimensions in bytes a multiple of 16 (what vectorised and TMA kernels need): part of
  // the class, since the class's representative shape has power-of-two leading dimensions.
  const int64_t lda = trans_a ? m : k, ldb = trans_b ? k : n;
  const uint32_t ld16 = ((lda * SizeOf(dtype)) % 16 == 0 ? 1u : 0u) |
                        ((ldb * SizeOf(dtype)) % 16 == 0 ? 2u : 0u) |
                        ((n * SizeOf(c_dtype)) % 16 == 0 ? 4u : 0u);
  const PlanKey class_key{dtype,         c_dtype, trans_a,       trans_b,
                          ShapeClass(m), n,       ShapeClass(k), align_a | (ld16 << 16),
                          align_b,       align_c};
  const PlanKey exact_key{dtype,   c_dtype, trans_a, trans_b, m, n, k, align_a | (ld16 << 16),
                          align_b, align_c};
  Layouts layouts;
  MakeLayouts(dtype, c_dtype, trans_a, trans_b, m, n, k, layouts);
  const Plan& class_plan = CachedPlan(state, state.class_plans, class_key);
  auto runs = state.class_runs.find(exact_key);
  if (runs == state.class_runs.end()) {
    runs = state.class_runs.emplace(exact_key, AlgoRuns(state, class_plan, layouts)).first;
  }
  const Plan& plan = runs->second ? class_plan : CachedPlan(state, state.exact_plans, exact_key);
  CUBLAS_CHECK(cublasLtMatmul(state.handle, plan.operation, &alpha, b, layouts.first, a,
                              layouts.second, &beta, c, layouts.result, c, layouts.result,
                              &plan.algo, state.workspace, kWorkspaceBytes, context.stream()));
}

}  // namespace aoetron::ops::cuda
