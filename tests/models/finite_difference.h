// Central finite differences against an analytic gradient, in f64.
//
// With h = 1e-5 in double, the central difference's truncation error is O(h²·f''') ≈ 1e-10 and
// its rounding error ≈ 1e-16·|f| / h ≈ 1e-11·|f|, so an analytic gradient that is right agrees to
// ~1e-8 relative; a wrong one (a missing term, a transposed product) is off by O(1). The 1e-6
// relative tolerance (with an absolute floor of 1e-9 for near-zero derivatives) sits far from
// both.
#pragma once

#include <functional>
#include <random>
#include <string>

#include "core/tensor.h"

namespace aoetron::testing {

constexpr double kFiniteDifferenceStep = 1e-5;
constexpr double kRelativeTolerance = 1e-6;
constexpr double kAbsoluteTolerance = 1e-9;

// Checks `grad` = ∂objective/∂value (both f64, same shape) along one random ±1 direction over
// the whole tensor and at `elements` random single elements. `objective` recomputes the scalar
// from the current contents of `value`, which is restored afterwards.
void ExpectGradientMatchesFiniteDifferences(const std::string& what, Tensor value,
                                            const Tensor& grad,
                                            const std::function<double()>& objective,
                                            std::mt19937_64& rng, int elements = 3);

// Fills an f64 tensor with N(0, std²) from `rng`.
void FillNormal(Tensor& t, double std, std::mt19937_64& rng);

}  // namespace aoetron::testing
