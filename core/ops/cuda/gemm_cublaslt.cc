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
// Plans. A descriptor set and the heuristic's chosen algorithm are cached per (dtype, transposes,
// M, N, K, operand alignments): a training step repeats the same few shapes, so after the first
// step a GEMM is one cublasLtMatmul call. Alignments are part of the key because Tensor::Rows views
// may start anywhere, and an algorithm chosen for 256-byte aligned operands may not run on others.
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

using PlanKey =
    std::tuple<DType, DType, bool, bool, int64_t, int64_t, int64_t, uint32_t, uint32_t, uint32_t>;

struct Plan {
  cublasLtMatmulDesc_t operation = nullptr;
  cublasLtMatrixLayout_t first = nullptr;   // our B
  cublasLtMatrixLayout_t second = nullptr;  // our A
  cublasLtMatrixLayout_t result = nullptr;  // our C
  cublasLtMatmulAlgo_t algo{};
};

struct DeviceGemmState {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::map<PlanKey, Plan> plans;
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

const Plan& PlanFor(DeviceGemmState& state, const PlanKey& key) {
  auto found = state.plans.find(key);
  if (found != state.plans.end()) return found->second;
  const auto [dtype, c_dtype, trans_a, trans_b, m, n, k, align_a, align_b, align_c] = key;
  const cudaDataType_t type = dtype == DType::kBF16 ? CUDA_R_16BF : CUDA_R_32F;
  const cudaDataType_t c_type = c_dtype == DType::kBF16 ? CUDA_R_16BF : CUDA_R_32F;
  Plan plan;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.operation, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_first = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.operation, CUBLASLT_MATMUL_DESC_TRANSA,
                                              &op_first, sizeof(op_first)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.operation, CUBLASLT_MATMUL_DESC_TRANSB,
                                              &op_second, sizeof(op_second)));
  // Stored (column-major) shapes: see the file comment.
  const uint64_t first_rows = trans_b ? k : n, first_cols = trans_b ? n : k;
  const uint64_t second_rows = trans_a ? m : k, second_cols = trans_a ? k : m;
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.first, type, first_rows, first_cols,
                                          static_cast<int64_t>(first_rows)));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.second, type, second_rows, second_cols,
                                          static_cast<int64_t>(second_rows)));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.result, c_type, n, m, n));

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
  CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(state.handle, plan.operation, plan.first, plan.second,
                                              plan.result, plan.result, preference, 1, &result,
                                              &returned));
  CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(preference));
  AOETRON_CHECK(returned > 0) << "Gemm (cuBLASLt): no algorithm for " << DTypeName(dtype) << " → "
                              << DTypeName(c_dtype) << " M=" << m << " N=" << n << " K=" << k
                              << " trans_a=" << trans_a << " trans_b=" << trans_b
                              << " alignments A/B/C " << align_a << "/" << align_b << "/"
                              << align_c;
  plan.algo = result.algo;
  return state.plans.emplace(key, plan).first->second;
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
  const PlanKey key{dtype, c_dtype, trans_a,      trans_b,      m,
                    n,     k,       Alignment(a), Alignment(b), Alignment(c)};
  const Plan& plan = PlanFor(state, key);
  CUBLAS_CHECK(cublasLtMatmul(state.handle, plan.operation, &alpha, b, plan.first, a, plan.second,
                              &beta, c, plan.result, c, plan.result, &plan.algo, state.workspace,
                              kWorkspaceBytes, context.stream()));
}

}  // namespace aoetron::ops::cuda
