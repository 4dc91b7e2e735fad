// Small whole-tensor ops: fill, copy, add, scale, sum of squares.
#pragma once

#include "core/tensor.h"

namespace aoetron::ops {

void Fill(Tensor& t, double value);         // t[:] = value (any numeric dtype)
void Copy(const Tensor& src, Tensor& dst);  // dst = src (same dtype and numel)
// dst = src in dst's dtype (same numel; float dtypes f32, bf16, f64): widening is exact, bf16
// rounds to nearest even, f64 → f32 rounds as a C++ cast. Mixed precision's bf16 compute copies of
// the f32 master weights, and the f32 staging of bf16 operands (core/ops/f32_staging.h).
void Convert(const Tensor& src, Tensor& dst);
void AddInto(const Tensor& src, Tensor& dst);         // dst += src
void Axpy(double alpha, const Tensor& x, Tensor& y);  // y += alpha · x
void Scale(Tensor& t, double alpha);                  // t *= alpha
// Σ t², accumulated in double over fixed chunks and fixed lanes: the bits depend on the values
// alone, not on the thread count or on where t's storage starts (on the CPU).
double SumSquares(const Tensor& t);

}  // namespace aoetron::ops
