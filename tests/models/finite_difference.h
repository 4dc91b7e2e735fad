// Central finite differences against an analytic gradient, in f64.
//
// D(h) = (f(θ+h) − f(θ−h)) / 2h has error c₂h² + c₄h⁴ + …; Richardson's (4·D(h/2) − D(h)) / 3
// cancels the h² term. With h = 3e-5 in double: the remaining truncation error is O(h⁴·f⁽⁵⁾) ≈
// 1e-18·f⁽⁵⁾, and the rounding error ≈ 1e-16·|f| / h ≈ 1e-11·|f|. A right gradient therefore
// agrees to ~1e-10 relative even on the steep tiny models the tests use; a wrong one (a missing
// term, a transposed product) is off by O(1). The 1e-6 relative tolerance (absolute floor 1e-9
// for near-zero derivatives) sits far from both. (Plain central differences were not enough:
// their h² error reached 1e-5 relative on these models.)
#pragma once

#include <functional>
#include <random>
#include <string>

#include "core/tensor.h"

namespace aoetron::testing {

constexpr double kFiniteDifferenceStep = 3e-5;
constexpr double kRelativeTolerance = 1e-6;
constexpr double kAbsoluteTolerance = 1e-9;

// Checks `grad` = ∂objective/∂value (both f64, same shape) along one random ±1 direction over
// the whole tensor and at `elements` random single elements. A direction or element where the
// objective is not smooth within ±h (a top-K selection changes there) is replaced by another
// one, up to 8 tries, detected from the finite differences alone (finite_difference.cc). `objective` recomputes the scalar
// from the current contents of `value`, which is restored afterwards.
void ExpectGradientMatchesFiniteDifferences(const std::string& what, Tensor value,
                                            const Tensor& grad,
                                            const std::function<double()>& objective,
                                            std::mt19937_64& rng, int elements = 3);

// A fresh random seed per test, or AOETRON_TEST_SEED when set (to replay a failure: every test
// prints its seed).
uint64_t TestSeed();

// Fills an f64 tensor with N(0, std²) from `rng`.
void FillNormal(Tensor& t, double std, std::mt19937_64& rng);

}  // namespace aoetron::testing
