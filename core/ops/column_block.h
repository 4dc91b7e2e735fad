// Column blocks of row-major matrices: the copies in and out of a contiguous scratch that let a
// GEMM (core/ops/gemm.h takes dense operands, no leading dimension) work on a block of columns
// of a wider matrix — AoE's Ŵ_down [d, n·r] a block of experts at a time (models/aoe_scorer.h).
//
// src and dst are 2-D with the same number of rows and the same dtype; the column ranges
// [src_col, src_col + width) and [dst_col, dst_col + width) must lie inside them. Each element is
// written by one thread: deterministic. Cost: rows·width element moves.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace aoetron::ops {

// dst[:, dst_col : dst_col + width] = src[:, src_col : src_col + width]  (any dtype).
void CopyColumns(const Tensor& src, int64_t src_col, Tensor& dst, int64_t dst_col, int64_t width);

// dst[:, dst_col : dst_col + width] += src[:, src_col : src_col + width]  (float dtypes).
void AddColumns(const Tensor& src, int64_t src_col, Tensor& dst, int64_t dst_col, int64_t width);

}  // namespace aoetron::ops
