// Moving whole rows between tensors by index: the pack, unpack and regroup steps of the expert
// dispatcher (parallel/expert_dispatcher.h) as kernels, so that models/ and parallel/ keep no loops
// over tensor data.
//
// Rows are the leading dimension of 2-D tensors [R, w] (src and dst share w and dtype, any dtype).
// Index tensors are i32 [M] on the operands' device; an undefined index means the identity
// (row i). Every dst row is written by one index entry at most (distinct dst_rows), so results
// are deterministic without atomics; rows of dst no entry names are left as they are.
#pragma once

#include "core/tensor.h"

namespace aoetron::ops {

// dst[dst_rows[i], :] = src[src_rows[i], :] for i < M.
void CopyRows(const Tensor& src, const Tensor& src_rows, Tensor& dst, const Tensor& dst_rows);

// dst[dst_rows[i], :] += src[src_rows[i], :] for i < M (float dtypes).
void AddRows(const Tensor& src, const Tensor& src_rows, Tensor& dst, const Tensor& dst_rows);

// dst[s, :] = Σ_{q ∈ [begin[s], begin[s+1])} src[src_rows[q], :], the terms added in q order
// starting from the first (no zero is added). begin: i64 [S + 1] ascending with every segment
// non-empty; src_rows: i32 [begin[S]]; dst: [S, w] (float dtypes).
void SegmentSumRows(const Tensor& src, const Tensor& src_rows, const Tensor& begin, Tensor& dst);

}  // namespace aoetron::ops
