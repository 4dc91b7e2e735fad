#include "core/ops/expert_permute.h"

#include <vector>

#include "core/ops/cpu/kernels.h"
#include "core/ops/cuda/kernels.h"
#ifdef AOETRON_WITH_CUDA
#include "core/cuda/device_context.h"
#endif
#include "core/device_transfer.h"
#include "core/ops/f32_staging.h"
#include "core/ops/op_checks.h"

namespace aoetron::ops {
namespace {

using namespace internal;  // NOLINT: the op_checks helpers

// position: i32 [N, K], a bijection onto [0, N·K) — the kernels rely on every grouped row having
// exactly one writer, so a malformed position is caught here rather than as a data race.
// On CUDA the entries stay on the device: the kernels check their range as they read them, and
// the bijection is a precondition (core/cuda/device_errors.h).
void CheckPosition(const char* op, const Tensor& position) {
  CheckDType(op, "position", position, DType::kI32);
  CheckRank(op, "position", position, 2);
  if (OnCuda(position)) return;
  const int64_t pairs = position.numel();
  const int32_t* pos = position.data<int32_t>();
  std::vector<char> seen(pairs, 0);
  for (int64_t p = 0; p < pairs; ++p) {
    AOETRON_CHECK(pos[p] >= 0 && pos[p] < pairs && !seen[pos[p]])
        << op << ": position " << position.DebugString() << " is not a permutation of [0, " << pairs
        << "): entry " << p << " = " << pos[p];
    seen[pos[p]] = 1;
  }
}

// expert_index: i32 with position's shape, entries in [0, experts).
void CheckExpertIndex(const char* op, const Tensor& expert_index, const Shape& shape,
                      int64_t experts) {
  CheckDType(op, "expert_index", expert_index, DType::kI32);
  CheckShapeEq(op, "expert_index", expert_index, shape);
  if (OnCuda(expert_index)) return;  // checked by the kernels as they read it
  CheckIndexRange(op, "expert_index", expert_index, experts);
}

// A float [rows, cols] operand of the reference dtype.
void CheckMatrix(const char* op, const char* name, const Tensor& t, DType dtype, int64_t rows,
                 int64_t cols) {
  CheckDType(op, name, t, dtype);
  CheckShapeEq(op, name, t, {rows, cols});
}

// Shapes of the AoE slice gather: c [N, n·r], out/dout [N·K, r]; returns n (the expert count).
int64_t CheckExpertSlices(const char* op, const Tensor& c, const char* c_name,
                          const Tensor& expert_index, const Tensor& position, const Tensor& grouped,
                          const char* grouped_name) {
  CheckFloat(op, c_name, c);
  CheckRank(op, c_name, c, 2);
  CheckPosition(op, position);
  const int64_t n = position.dim(0), k = position.dim(1);
  CheckDType(op, grouped_name, grouped, c.dtype());
  CheckRank(op, grouped_name, grouped, 2);
  const int64_t r = grouped.dim(1);
  AOETRON_CHECK(r >= 1 && c.dim(1) % r == 0)
      << op << ": the slice width " << r << " of " << grouped_name << " " << grouped.DebugString()
      << " must divide the columns of " << c_name << " " << c.DebugString();
  const int64_t experts = c.dim(1) / r;
  CheckMatrix(op, c_name, c, c.dtype(), n, experts * r);
  CheckMatrix(op, grouped_name, grouped, c.dtype(), n * k, r);
  CheckExpertIndex(op, expert_index, position.shape(), experts);
  return experts;
}

}  // namespace

ExpertLayout BuildExpertLayout(const Tensor& expert_index, int64_t num_experts,
                               std::span<const int64_t> keep_limit) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "BuildExpertLayout";
  CheckOperands(kOp, {{"expert_index", &expert_index}});
  CheckRank(kOp, "expert_index", expert_index, 2);
  AOETRON_CHECK(num_experts >= 1) << kOp << ": num_experts must be positive, got " << num_experts;
  AOETRON_CHECK(keep_limit.empty() || static_cast<int64_t>(keep_limit.size()) == num_experts)
      << kOp << ": " << keep_limit.size() << " keep limits for " << num_experts << " experts";
  const int64_t pairs = expert_index.numel();
  AOETRON_CHECK(pairs <= INT32_MAX) << kOp << ": " << pairs << " pairs overflow i32 positions";
  // The counts must reach the host anyway (they size the expert GEMMs and the all-to-all), so on
  // a GPU the layout is built there: copy the N·K indices over (this synchronises the stream),
  // run the CPU's counting sort, copy the positions back. Same layout as the CPU, bit for bit.
  const Tensor index = OnHost(expert_index);
  CheckExpertIndex(kOp, index, index.shape(), num_experts);
  ExpertLayout layout;
  layout.num_experts = num_experts;
  layout.counts.resize(num_experts);
  layout.offsets.resize(num_experts + 1);
  layout.position = Tensor::Empty(expert_index.shape(), DType::kI32, expert_index.device());
  Tensor position = OnHost(layout.position);
  cpu::BuildExpertLayout(index.data<int32_t>(), pairs, num_experts,
                         keep_limit.empty() ? nullptr : keep_limit.data(), layout.counts.data(),
                         layout.offsets.data(), position.data<int32_t>());
  if (!layout.position.device().host_memory()) CopyAcrossDevices(position, layout.position);
  return layout;
}

void PermuteRows(const Tensor& x, const Tensor& position, Tensor& out) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "PermuteRows";
  CheckOperands(kOp, {{"x", &x}, {"position", &position}, {"out", &out}});
  CheckFloat(kOp, "x", x);
  CheckRank(kOp, "x", x, 2);
  CheckPosition(kOp, position);
  const int64_t n = position.dim(0), k = position.dim(1), d = x.dim(1);
  CheckMatrix(kOp, "x", x, x.dtype(), n, d);
  CheckMatrix(kOp, "out", out, x.dtype(), n * k, d);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(x)) {
    cuda::PermuteRows(CudaOrdinal(x), x.dtype(), x.raw_data(), position.data<int32_t>(), n, k, d,
                      out.raw_data());
    return;
  }
#endif
  if (x.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    PermuteRows(f32.In(x), position, f32.Out(out));
    return;
  }
  DispatchFloat(x.dtype(), [&]<typename T>() {
    cpu::PermuteRows<T>(x.data<T>(), position.data<int32_t>(), n, k, d, out.data<T>());
  });
}

void PermuteRowsBackward(const Tensor& dout, const Tensor& position, Tensor& dx) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "PermuteRowsBackward";
  CheckOperands(kOp, {{"dout", &dout}, {"position", &position}, {"dx", &dx}});
  CheckFloat(kOp, "dx", dx);
  CheckRank(kOp, "dx", dx, 2);
  CheckPosition(kOp, position);
  const int64_t n = position.dim(0), k = position.dim(1), d = dx.dim(1);
  CheckMatrix(kOp, "dx", dx, dx.dtype(), n, d);
  CheckMatrix(kOp, "dout", dout, dx.dtype(), n * k, d);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(dx)) {
    cuda::PermuteRowsBackward(CudaOrdinal(dx), dx.dtype(), dout.raw_data(),
                              position.data<int32_t>(), n, k, d, dx.raw_data());
    return;
  }
#endif
  if (dx.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    PermuteRowsBackward(f32.In(dout), position, f32.InOut(dx));
    return;
  }
  DispatchFloat(dx.dtype(), [&]<typename T>() {
    cpu::PermuteRowsBackward<T>(dout.data<T>(), position.data<int32_t>(), n, k, d, dx.data<T>());
  });
}

void GatherExpertSlices(const Tensor& c, const Tensor& expert_index, const Tensor& position,
                        Tensor& out) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "GatherExpertSlices";
  CheckOperands(
      kOp, {{"c", &c}, {"expert_index", &expert_index}, {"position", &position}, {"out", &out}});
  const int64_t experts = CheckExpertSlices(kOp, c, "c", expert_index, position, out, "out");
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(c)) {
    cuda::GatherExpertSlices(CudaOrdinal(c), c.dtype(), c.raw_data(), expert_index.data<int32_t>(),
                             position.data<int32_t>(), position.dim(0), position.dim(1), experts,
                             out.dim(1), out.raw_data());
    return;
  }
#endif
  if (c.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    GatherExpertSlices(f32.In(c), expert_index, position, f32.Out(out));
    return;
  }
  DispatchFloat(c.dtype(), [&]<typename T>() {
    cpu::GatherExpertSlices<T>(c.data<T>(), expert_index.data<int32_t>(), position.data<int32_t>(),
                               position.dim(0), position.dim(1), experts, out.dim(1),
                               out.data<T>());
  });
}

void GatherExpertSlicesBackward(const Tensor& dout, const Tensor& expert_index,
                                const Tensor& position, Tensor& dc) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "GatherExpertSlicesBackward";
  CheckOperands(
      kOp,
      {{"dout", &dout}, {"expert_index", &expert_index}, {"position", &position}, {"dc", &dc}});
  const int64_t experts = CheckExpertSlices(kOp, dc, "dc", expert_index, position, dout, "dout");
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(dc)) {
    cuda::GatherExpertSlicesBackward(CudaOrdinal(dc), dc.dtype(), dout.raw_data(),
                                     expert_index.data<int32_t>(), position.data<int32_t>(),
                                     position.dim(0), position.dim(1), experts, dout.dim(1),
                                     dc.raw_data());
    return;
  }
#endif
  if (dc.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    GatherExpertSlicesBackward(f32.In(dout), expert_index, position, f32.InOut(dc));
    return;
  }
  DispatchFloat(dc.dtype(), [&]<typename T>() {
    cpu::GatherExpertSlicesBackward<T>(dout.data<T>(), expert_index.data<int32_t>(),
                                       position.data<int32_t>(), position.dim(0), position.dim(1),
                                       experts, dout.dim(1), dc.data<T>());
  });
}

void CombineRows(const Tensor& expert_out, const Tensor& position, const Tensor& weights,
                 Tensor& y) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "CombineRows";
  CheckOperands(
      kOp,
      {{"expert_out", &expert_out}, {"position", &position}, {"weights", &weights}, {"y", &y}});
  CheckFloat(kOp, "expert_out", expert_out);
  CheckRank(kOp, "expert_out", expert_out, 2);
  CheckPosition(kOp, position);
  const int64_t n = position.dim(0), k = position.dim(1), d = expert_out.dim(1);
  const DType dtype = expert_out.dtype();
  CheckMatrix(kOp, "expert_out", expert_out, dtype, n * k, d);
  CheckGradientDType(kOp, "weights", weights, dtype);
  CheckShapeEq(kOp, "weights", weights, {n, k});
  CheckMatrix(kOp, "y", y, dtype, n, d);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(y) && weights.dtype() == dtype) {
    cuda::CombineRows(CudaOrdinal(y), dtype, expert_out.raw_data(), position.data<int32_t>(),
                      weights.raw_data(), n, k, d, y.raw_data());
    return;
  }
#endif
  if (expert_out.dtype() ==
      DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    CombineRows(f32.In(expert_out), position, f32.In(weights), f32.Out(y));
    return;
  }
  DispatchFloat(dtype, [&]<typename T>() {
    cpu::CombineRows<T>(expert_out.data<T>(), position.data<int32_t>(), weights.data<T>(), n, k, d,
                        y.data<T>());
  });
}

void CombineRowsBackward(const Tensor& dy, const Tensor& expert_out, const Tensor& position,
                         const Tensor& weights, Tensor& d_expert_out, Tensor& dweights) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "CombineRowsBackward";
  CheckOperands(kOp, {{"dy", &dy},
                      {"expert_out", &expert_out},
                      {"position", &position},
                      {"weights", &weights},
                      {"d_expert_out", &d_expert_out},
                      {"dweights", &dweights}});
  CheckFloat(kOp, "expert_out", expert_out);
  CheckRank(kOp, "expert_out", expert_out, 2);
  CheckPosition(kOp, position);
  const int64_t n = position.dim(0), k = position.dim(1), d = expert_out.dim(1);
  const DType dtype = expert_out.dtype();
  CheckMatrix(kOp, "expert_out", expert_out, dtype, n * k, d);
  CheckMatrix(kOp, "d_expert_out", d_expert_out, dtype, n * k, d);
  CheckGradientDType(kOp, "weights", weights, dtype);
  CheckShapeEq(kOp, "weights", weights, {n, k});
  CheckMatrix(kOp, "dweights", dweights, weights.dtype(), n, k);
  CheckMatrix(kOp, "dy", dy, dtype, n, d);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(dy) && weights.dtype() == dtype) {
    cuda::CombineRowsBackward(CudaOrdinal(dy), dtype, dy.raw_data(), expert_out.raw_data(),
                              position.data<int32_t>(), weights.raw_data(), n, k, d,
                              d_expert_out.raw_data(), dweights.raw_data());
    return;
  }
#endif
  if (expert_out.dtype() ==
      DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    CombineRowsBackward(f32.In(dy), f32.In(expert_out), position, f32.In(weights),
                        f32.InOut(d_expert_out), f32.InOut(dweights));
    return;
  }
  DispatchFloat(dtype, [&]<typename T>() {
    cpu::CombineRowsBackward<T>(dy.data<T>(), expert_out.data<T>(), position.data<int32_t>(),
                                weights.data<T>(), n, k, d, d_expert_out.data<T>(),
                                dweights.data<T>());
  });
}

}  // namespace aoetron::ops
