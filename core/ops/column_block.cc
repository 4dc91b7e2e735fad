#include "core/ops/column_block.h"

#include "core/ops/cpu/kernels.h"
#include "core/ops/cuda/kernels.h"
#include "core/ops/f32_staging.h"
#include "core/ops/op_checks.h"

namespace aoetron::ops {
namespace {

using namespace internal;  // NOLINT: the op_checks helpers

void CheckColumnBlocks(const char* op, const Tensor& src, int64_t src_col, const Tensor& dst,
                       int64_t dst_col, int64_t width) {
  CheckRank(op, "src", src, 2);
  CheckRank(op, "dst", dst, 2);
  CheckDType(op, "dst", dst, src.dtype());
  AOETRON_CHECK(src.dim(0) == dst.dim(0) && width >= 0 && src_col >= 0 && dst_col >= 0 &&
                src_col + width <= src.dim(1) && dst_col + width <= dst.dim(1))
      << op << ": columns [" << src_col << ", " << src_col + width << ") of src "
      << src.DebugString() << " → [" << dst_col << ", " << dst_col + width << ") of dst "
      << dst.DebugString();
}

}  // namespace

void CopyColumns(const Tensor& src, int64_t src_col, Tensor& dst, int64_t dst_col, int64_t width) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "CopyColumns";
  CheckOperands(kOp, {{"src", &src}, {"dst", &dst}});
  CheckColumnBlocks(kOp, src, src_col, dst, dst_col, width);
  const int64_t rows = src.dim(0), element = static_cast<int64_t>(SizeOf(src.dtype()));
  if (rows == 0 || width == 0) return;
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(src)) {
    cuda::CopyColumns(CudaOrdinal(src), src.raw_data(), src.dim(1) * element, src_col * element,
                      dst.raw_data(), dst.dim(1) * element, dst_col * element, rows,
                      width * element);
    return;
  }
#endif
  cpu::CopyColumns(src.raw_data(), src.dim(1) * element, src_col * element, dst.raw_data(),
                   dst.dim(1) * element, dst_col * element, rows, width * element);
}

void AddColumns(const Tensor& src, int64_t src_col, Tensor& dst, int64_t dst_col, int64_t width) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "AddColumns";
  CheckOperands(kOp, {{"src", &src}, {"dst", &dst}});
  CheckFloat(kOp, "dst", dst);
  CheckColumnBlocks(kOp, src, src_col, dst, dst_col, width);
  const int64_t rows = src.dim(0);
  if (rows == 0 || width == 0) return;
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(src)) {
    cuda::AddColumns(CudaOrdinal(src), src.dtype(), src.raw_data(), src.dim(1), src_col,
                     dst.raw_data(), dst.dim(1), dst_col, rows, width);
    return;
  }
#endif
  if (dst.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    AddColumns(f32.In(src), src_col, f32.InOut(dst), dst_col, width);
    return;
  }
  DispatchFloat(dst.dtype(), [&]<typename T>() {
    cpu::AddColumns<T>(src.data<T>(), src.dim(1), src_col, dst.data<T>(), dst.dim(1), dst_col, rows,
                       width);
  });
}

}  // namespace aoetron::ops
