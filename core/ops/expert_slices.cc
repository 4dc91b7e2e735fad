#include "core/ops/expert_slices.h"

#include "core/ops/cpu/kernels.h"
#include "core/ops/cuda/kernels.h"
#include "core/ops/f32_staging.h"
#include "core/ops/op_checks.h"

namespace aoetron::ops {
namespace {

using namespace internal;  // NOLINT: the op_checks helpers

// expert_index: i32 [N, K] with entries in [0, experts) (checked here on the host; CUDA kernels
// check as they read).
void CheckSlotIndex(const char* op, const Tensor& expert_index, int64_t tokens, int64_t experts) {
  CheckDType(op, "expert_index", expert_index, DType::kI32);
  CheckRank(op, "expert_index", expert_index, 2);
  AOETRON_CHECK(expert_index.dim(0) == tokens && expert_index.dim(1) >= 1)
      << op << ": expert_index " << expert_index.DebugString() << " for " << tokens << " tokens";
  if (!OnCuda(expert_index)) CheckIndexRange(op, "expert_index", expert_index, experts);
}

// The slot width r of an [N, K·r] slot tensor.
int64_t SlotWidth(const char* op, const char* name, const Tensor& slots, int64_t k) {
  CheckRank(op, name, slots, 2);
  AOETRON_CHECK(slots.dim(1) >= k && slots.dim(1) % k == 0)
      << op << ": " << name << " " << slots.DebugString() << " is not [N, K·r] for K = " << k;
  return slots.dim(1) / k;
}

}  // namespace

void TakeExpertSlices(const Tensor& c, const Tensor& expert_index, Tensor& out) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "TakeExpertSlices";
  CheckOperands(kOp, {{"c", &c}, {"expert_index", &expert_index}, {"out", &out}});
  CheckFloat(kOp, "c", c);
  CheckRank(kOp, "c", c, 2);
  CheckDType(kOp, "out", out, c.dtype());
  const int64_t n = c.dim(0), k = expert_index.rank() == 2 ? expert_index.dim(1) : 1;
  const int64_t r = SlotWidth(kOp, "out", out, k);
  AOETRON_CHECK(out.dim(0) == n && c.dim(1) % r == 0)
      << kOp << ": c " << c.DebugString() << " is not [N, n·" << r << "] for out "
      << out.DebugString();
  const int64_t experts = c.dim(1) / r;
  CheckSlotIndex(kOp, expert_index, n, experts);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(c)) {
    cuda::TakeExpertSlices(CudaOrdinal(c), c.dtype(), c.raw_data(), expert_index.data<int32_t>(), n,
                           k, experts, r, out.raw_data());
    return;
  }
#endif
  if (c.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    TakeExpertSlices(f32.In(c), expert_index, f32.Out(out));
    return;
  }
  DispatchFloat(c.dtype(), [&]<typename T>() {
    cpu::TakeExpertSlices<T>(c.data<T>(), expert_index.data<int32_t>(), n, k, experts, r,
                             out.data<T>());
  });
}

void TakeExpertSlicesBackward(const Tensor& dout, const Tensor& expert_index, int64_t num_experts,
                              int64_t first_expert, Tensor& dc) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "TakeExpertSlicesBackward";
  CheckOperands(kOp, {{"dout", &dout}, {"expert_index", &expert_index}, {"dc", &dc}});
  CheckFloat(kOp, "dc", dc);
  CheckRank(kOp, "dc", dc, 2);
  CheckDType(kOp, "dout", dout, dc.dtype());
  const int64_t n = dc.dim(0), k = expert_index.rank() == 2 ? expert_index.dim(1) : 1;
  const int64_t r = SlotWidth(kOp, "dout", dout, k);
  AOETRON_CHECK(dout.dim(0) == n && dc.dim(1) % r == 0)
      << kOp << ": dc " << dc.DebugString() << " is not [N, m·" << r << "] for dout "
      << dout.DebugString();
  const int64_t block = dc.dim(1) / r;
  AOETRON_CHECK(first_expert >= 0 && first_expert + block <= num_experts)
      << kOp << ": experts [" << first_expert << ", " << first_expert + block << ") of dc "
      << dc.DebugString() << " are not inside [0, " << num_experts << ")";
  CheckSlotIndex(kOp, expert_index, n, num_experts);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(dc)) {
    cuda::TakeExpertSlicesBackward(CudaOrdinal(dc), dc.dtype(), dout.raw_data(),
                                   expert_index.data<int32_t>(), n, k, num_experts, first_expert,
                                   block, r, dc.raw_data());
    return;
  }
#endif
  if (dc.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    TakeExpertSlicesBackward(f32.In(dout), expert_index, num_experts, first_expert, f32.InOut(dc));
    return;
  }
  DispatchFloat(dc.dtype(), [&]<typename T>() {
    cpu::TakeExpertSlicesBackward<T>(dout.data<T>(), expert_index.data<int32_t>(), n, k,
                                     first_expert, block, r, dc.data<T>());
  });
}

void ExpertSliceProduct(const Tensor& x, const Tensor& w, const Tensor& expert_index, Tensor& out) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "ExpertSliceProduct";
  CheckOperands(kOp, {{"x", &x}, {"w", &w}, {"expert_index", &expert_index}, {"out", &out}});
  CheckFloat(kOp, "x", x);
  CheckRank(kOp, "x", x, 2);
  CheckDType(kOp, "w", w, x.dtype());
  CheckRank(kOp, "w", w, 2);
  CheckDType(kOp, "out", out, x.dtype());
  const int64_t n = x.dim(0), d = x.dim(1), k = expert_index.rank() == 2 ? expert_index.dim(1) : 1;
  const int64_t r = SlotWidth(kOp, "out", out, k);
  AOETRON_CHECK(out.dim(0) == n && w.dim(0) == d && w.dim(1) % r == 0)
      << kOp << ": x " << x.DebugString() << ", w " << w.DebugString() << ", out "
      << out.DebugString() << ": w must be [d, n·r] with r = " << r;
  const int64_t experts = w.dim(1) / r;
  CheckSlotIndex(kOp, expert_index, n, experts);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(x)) {
    cuda::ExpertSliceProduct(CudaOrdinal(x), x.dtype(), x.raw_data(), w.raw_data(),
                             expert_index.data<int32_t>(), n, k, d, experts, r, out.raw_data());
    return;
  }
#endif
  if (x.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    ExpertSliceProduct(f32.In(x), f32.In(w), expert_index, f32.Out(out));
    return;
  }
  DispatchFloat(x.dtype(), [&]<typename T>() {
    cpu::ExpertSliceProduct<T>(x.data<T>(), w.data<T>(), expert_index.data<int32_t>(), n, k, d,
                               experts, r, out.data<T>());
  });
}

}  // namespace aoetron::ops
