// The arithmetic of the deterministic reductions: contributions combined in rank order.
//
// out[i] = ((c_0[i] op c_1[i]) op c_2[i]) op ... op c_{p-1}[i], evaluated in the element type.
// Every backend that promises Communicator's determinism contract reduces with this function,
// so the result is a fixed function of the inputs, whatever the transport or message size.
// Sum of integers wraps (two's complement) instead of overflowing into undefined behaviour.
// Max returns NaN at i if any contribution is NaN there; between equal values (+0 and -0) the
// lower rank's wins.
#pragma once

#include <cstdint>
#include <span>

#include "core/dtype.h"
#include "parallel/communicator.h"

namespace aoetron::parallel {

// True for the element types reductions accept: f32, f64, bf16 (combined in f32, rounded once),
// i32, i64.
bool IsReducible(DType dtype);

// Reduces `count` elements of each contribution (contributions[r] is rank r's, `count` elements
// of `dtype`) into `out`. `out` may alias contributions[0] but no other contribution.
void ReduceInRankOrder(ReduceOp op, DType dtype, std::span<const void* const> contributions,
                       void* out, int64_t count);

}  // namespace aoetron::parallel
