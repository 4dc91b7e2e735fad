// numpy.sum of a float64 array and Megatron-Core's weight normalisation, bit for bit.
//
// numpy adds a contiguous float64 array by pairwise summation (pairwise_sum in numpy's
// loops_utils.h.src), so its result differs from a left-to-right loop once there are 8 or more
// terms:
//   n < 8      left to right from 0.0;
//   n ≤ 128    eight running sums r[j] over a[j], a[j+8], ...; then
//              ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), then the n mod 8 leftovers;
//   n > 128    the two halves at m = n/2 rounded down to a multiple of 8, each summed pairwise,
//              then added.
// numpy.add.reduce starts from the identity: sum = 0.0 + pairwise_sum(a).
// Megatron-Core's normalize(w) (megatron/core/datasets/utils.py) is w / numpy.sum(w), element by
// element. Only additions and divisions: nothing a compiler may contract into an FMA.
// Tested against numpy itself (tests/data/check_megatron_rules.py).
#pragma once

#include <vector>

namespace aoetron::data {

// numpy.sum(numpy.array(values, dtype=float64)).
double NumpySum(const std::vector<double>& values);

// Megatron-Core's normalize(weights): weights / numpy.sum(weights).
std::vector<double> MegatronNormalize(const std::vector<double>& weights);

}  // namespace aoetron::data
