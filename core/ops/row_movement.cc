// CPU kernels inline: each output row is one memcpy or one short sum, rows in parallel. CUDA:
// core/ops/cuda/row_movement_kernels.cu, which checks the row indices as it reads them (a bad
// one is a device error at the next synchronisation); distinct dst rows are its precondition.
#include "core/ops/row_movement.h"

#include <omp.h>

#include <cstring>
#include <vector>

#include "core/ops/cuda/kernels.h"
#include "core/ops/f32_staging.h"
#include "core/ops/op_checks.h"

namespace aoetron::ops {
namespace {

using namespace internal;  // NOLINT: the op_checks helpers

// Below this many elements moved a call stays on one thread.
constexpr int64_t kParallelMinElements = int64_t{1} << 14;

// A defined row index: i32 [m] on src's device with entries in [0, rows).
void CheckRowIndex(const char* op, const char* name, const Tensor& index, const Tensor& src,
                   int64_t m, int64_t rows) {
  AOETRON_CHECK(index.device() == src.device())
      << op << ": " << name << " " << index.DebugString() << " is not on " << src.DebugString();
  CheckShapeEq(op, name, index, {m});
  if (!OnCuda(index)) CheckIndexRange(op, name, index, rows);
}

// Checks the operands of a row move and returns M, the number of rows moved.
int64_t CheckRowMove(const char* op, const Tensor& src, const Tensor& src_rows, const Tensor& dst,
                     const Tensor& dst_rows) {
  CheckOperands(op, {{"src", &src}, {"dst", &dst}});
  CheckRank(op, "src", src, 2);
  CheckRank(op, "dst", dst, 2);
  CheckDType(op, "dst", dst, src.dtype());
  AOETRON_CHECK(src.dim(1) == dst.dim(1)) << op << ": src " << src.DebugString() << " and dst "
                                          << dst.DebugString() << " differ in row width";
  const int64_t m = src_rows.defined()   ? src_rows.numel()
                    : dst_rows.defined() ? dst_rows.numel()
                                         : src.dim(0);
  if (src_rows.defined()) {
    CheckRowIndex(op, "src_rows", src_rows, src, m, src.dim(0));
  } else {
    AOETRON_CHECK(m <= src.dim(0)) << op << ": " << m << " rows from " << src.DebugString();
  }
  if (!dst_rows.defined()) {
    AOETRON_CHECK(m <= dst.dim(0)) << op << ": " << m << " rows into " << dst.DebugString();
    return m;
  }
  CheckRowIndex(op, "dst_rows", dst_rows, src, m, dst.dim(0));
  if (OnCuda(dst_rows)) return m;  // distinct dst rows: a precondition on the device
  // Each dst row has one writer at most (the kernels write rows in parallel).
  std::vector<char> written(dst.dim(0), 0);
  const int32_t* row = dst_rows.data<int32_t>();
  for (int64_t i = 0; i < m; ++i) {
    AOETRON_CHECK(!written[row[i]]) << op << ": dst row " << row[i] << " is named twice";
    written[row[i]] = 1;
  }
  return m;
}

const int32_t* IndexOrNull(const Tensor& index) {
  return index.defined() ? index.data<int32_t>() : nullptr;
}

int64_t RowOf(const int32_t* index, int64_t i) { return index != nullptr ? index[i] : i; }

}  // namespace

void CopyRows(const Tensor& src, const Tensor& src_rows, Tensor& dst, const Tensor& dst_rows) {
  const DeviceAccessScope kernel_access;
  const int64_t m = CheckRowMove("CopyRows", src, src_rows, dst, dst_rows);
  const size_t row_bytes = static_cast<size_t>(src.dim(1)) * SizeOf(src.dtype());
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(src)) {
    cuda::CopyRows(CudaOrdinal(src), src.raw_data(), IndexOrNull(src_rows), src.dim(0),
                   dst.raw_data(), IndexOrNull(dst_rows), dst.dim(0), m,
                   static_cast<int64_t>(row_bytes));
    return;
  }
#endif
  const char* in = static_cast<const char*>(src.raw_data());
  char* out = static_cast<char*>(dst.raw_data());
  const int32_t* from = IndexOrNull(src_rows);
  const int32_t* to = IndexOrNull(dst_rows);
#pragma omp parallel for schedule(static) if (m * src.dim(1) >= kParallelMinElements)
  for (int64_t i = 0; i < m; ++i) {
    std::memcpy(out + RowOf(to, i) * row_bytes, in + RowOf(from, i) * row_bytes, row_bytes);
  }
}

void AddRows(const Tensor& src, const Tensor& src_rows, Tensor& dst, const Tensor& dst_rows) {
  const DeviceAccessScope kernel_access;
  const int64_t m = CheckRowMove("AddRows", src, src_rows, dst, dst_rows);
  CheckFloat("AddRows", "src", src);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(src)) {
    cuda::AddRows(CudaOrdinal(src), src.dtype(), src.raw_data(), IndexOrNull(src_rows), src.dim(0),
                  dst.raw_data(), IndexOrNull(dst_rows), dst.dim(0), m, src.dim(1));
    return;
  }
#endif
  if (src.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    AddRows(f32.In(src), src_rows, f32.InOut(dst), dst_rows);
    return;
  }
  const int64_t w = src.dim(1);
  const int32_t* from = IndexOrNull(src_rows);
  const int32_t* to = IndexOrNull(dst_rows);
  DispatchFloat(src.dtype(), [&]<typename T>() {
    const T* in = src.data<T>();
    T* out = dst.data<T>();
#pragma omp parallel for schedule(static) if (m * w >= kParallelMinElements)
    for (int64_t i = 0; i < m; ++i) {
      T* row = out + RowOf(to, i) * w;
      const T* add = in + RowOf(from, i) * w;
#pragma omp simd
      for (int64_t c = 0; c < w; ++c) row[c] += add[c];
    }
  });
}

void SegmentSumRows(const Tensor& src, const Tensor& src_rows, const Tensor& begin, Tensor& dst) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "SegmentSumRows";
  CheckOperands(kOp, {{"src", &src}, {"src_rows", &src_rows}, {"begin", &begin}, {"dst", &dst}});
  CheckFloat(kOp, "src", src);
  CheckDType(kOp, "begin", begin, DType::kI64);
  CheckShapeEq(kOp, "begin", begin, {dst.dim(0) + 1});
  const int64_t segments = dst.dim(0), w = src.dim(1);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(src)) {  // the kernel checks the segments and the row indices as it reads them
    CheckRank(kOp, "src", src, 2);
    CheckRank(kOp, "src_rows", src_rows, 1);
    CheckDType(kOp, "src_rows", src_rows, DType::kI32);
    CheckDType(kOp, "dst", dst, src.dtype());
    AOETRON_CHECK(dst.rank() == 2 && dst.dim(1) == w) << kOp << ": dst " << dst.DebugString();
    cuda::SegmentSumRows(CudaOrdinal(src), src.dtype(), src.raw_data(), src_rows.data<int32_t>(),
                         src.dim(0), src_rows.numel(), begin.data<int64_t>(), segments,
                         dst.raw_data(), w);
    return;
  }
#endif
  const int64_t* first = begin.data<int64_t>();
  for (int64_t s = 0; s < segments; ++s) {
    AOETRON_CHECK(first[s] < first[s + 1])
        << kOp << ": segment " << s << " is empty or out of order [" << first[s] << ", "
        << first[s + 1] << ")";
  }
  AOETRON_CHECK(segments == 0 || (first[0] >= 0 && first[segments] <= src_rows.numel()))
      << kOp << ": segments outside the " << src_rows.numel() << " src_rows";
  CheckRank(kOp, "src", src, 2);
  CheckRank(kOp, "src_rows", src_rows, 1);
  CheckIndexRange(kOp, "src_rows", src_rows, src.dim(0));
  CheckDType(kOp, "dst", dst, src.dtype());
  AOETRON_CHECK(dst.rank() == 2 && dst.dim(1) == w) << kOp << ": dst " << dst.DebugString();
  if (src.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    SegmentSumRows(f32.In(src), src_rows, begin, f32.Out(dst));
    return;
  }
  const int32_t* rows = src_rows.data<int32_t>();
  DispatchFloat(src.dtype(), [&]<typename T>() {
    const T* in = src.data<T>();
    T* out = dst.data<T>();
#pragma omp parallel for schedule(static) if (first[segments] * w >= kParallelMinElements)
    for (int64_t s = 0; s < segments; ++s) {
      T* row = out + s * w;
      std::memcpy(row, in + static_cast<int64_t>(rows[first[s]]) * w, sizeof(T) * w);
      for (int64_t q = first[s] + 1; q < first[s + 1]; ++q) {
        const T* add = in + static_cast<int64_t>(rows[q]) * w;
#pragma omp simd
        for (int64_t c = 0; c < w; ++c) row[c] += add[c];
      }
    }
  });
}

}  // namespace aoetron::ops
