// Column blocks (core/ops/column_block.h): rows split over threads, one memcpy or one vector add
// per row. Each element has one writer: deterministic.
#include <omp.h>

#include <cstring>

#include "core/ops/cpu/kernels.h"

namespace aoetron::ops::cpu {
namespace {

constexpr int64_t kParallelMinBytes = int64_t{1} << 16;

}  // namespace

void CopyColumns(const void* src, int64_t src_row_bytes, int64_t src_offset, void* dst,
                 int64_t dst_row_bytes, int64_t dst_offset, int64_t rows, int64_t block_bytes) {
  const char* s = static_cast<const char*>(src) + src_offset;
  char* o = static_cast<char*>(dst) + dst_offset;
#pragma omp parallel for schedule(static) if (rows * block_bytes >= kParallelMinBytes)
  for (int64_t row = 0; row < rows; ++row) {
    std::memcpy(o + row * dst_row_bytes, s + row * src_row_bytes, block_bytes);
  }
}

template <typename T>
void AddColumns(const T* src, int64_t src_cols, int64_t src_col, T* dst, int64_t dst_cols,
                int64_t dst_col, int64_t rows, int64_t width) {
#pragma omp parallel for schedule(static) if (rows * width * sizeof(T) >= kParallelMinBytes)
  for (int64_t row = 0; row < rows; ++row) {
    const T* s = src + row * src_cols + src_col;
    T* o = dst + row * dst_cols + dst_col;
#pragma omp simd
    for (int64_t i = 0; i < width; ++i) o[i] += s[i];
  }
}

template void AddColumns<float>(const float*, int64_t, int64_t, float*, int64_t, int64_t, int64_t,
                                int64_t);
template void AddColumns<double>(const double*, int64_t, int64_t, double*, int64_t, int64_t,
                                 int64_t, int64_t);

}  // namespace aoetron::ops::cpu
