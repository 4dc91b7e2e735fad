// Test helpers for the op kernels: random inputs, f32/f64 conversion, and gradient checks of a
// backward kernel against central finite differences of its forward, all in f64.
//
// The loss is a random projection of the op's outputs, L = Σ_k ⟨y_k, R_k⟩, so dL/dy_k = R_k is
// what the backward receives, and dL/dx is the full vector-Jacobian product the backward must
// produce. Every element x_i of every input is checked:
//   numeric_i = Σ_k ⟨y_k(x + h·e_i) − y_k(x − h·e_i), R_k⟩ / 2h
// The output differences are taken element by element before projecting, so outputs that do not
// depend on x_i cancel exactly and add no rounding noise.
//
// Tolerance. In f64 with h = 1e-6 the truncation error is h²/6·|∂³L| ≈ 2e-13 (for O(1) third
// derivatives) and the rounding error is ≈ ε·|y|/h ≈ 1e-16/1e-6 = 1e-10 per contributing output.
// A correct gradient therefore agrees to ~1e-9 relative; a wrong one (missing term, wrong sign,
// transposed product, factor of 2) is off by O(1). The check uses 1e-6 relative with an
// absolute floor of 1e-8 · max|gradient| for elements whose gradient happens to be near zero:
// three orders above the noise, many orders below any real error.
// One more absolute term covers derivatives that are small next to the outputs they come from
// (RMSNorm with d = 1 is y ≈ ±w with dy/dx ≈ 1e-5): each output carries a rounding error of a
// few ulps of itself, so the difference quotient carries ≤ kRoundingUlps·ε·Σ_j |y_j R_j| / 2h
// over the outputs that moved (kRoundingUlps = 16 bounds the handful of rounded operations per
// output). It is ~2e-9 per moved O(1) output: below 1e-6 relative for O(1) derivatives.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace aoetron::optest {

constexpr double kStep = 1e-6;
constexpr double kRelTol = 1e-6;
constexpr double kAbsTolFraction = 1e-8;
constexpr double kRoundingUlps = 16;

// A seed per test run, from AOETRON_TEST_SEED if set (to reproduce a failure), else random.
// Tests wrap their body in SCOPED_TRACE(SeedTrace(seed)) so a failure prints it.
uint64_t TestSeed();
std::string SeedTrace(uint64_t seed);

// f64 tensor with entries uniform in [lo, hi).
Tensor Uniform(const Shape& shape, std::mt19937_64& rng, double lo = -1.0, double hi = 1.0);
Tensor ZerosLike(const Tensor& t);
Tensor Clone(const Tensor& t);
// Converts between f64 and f32 (any float input; same shape).
Tensor ToF32(const Tensor& t);
Tensor ToF64(const Tensor& t);
// Element i of a float tensor as a double.
double At(const Tensor& t, int64_t i);

// One input of the op under test: its f64 value (perturbed in place, restored afterwards) and
// the analytic gradient the backward produced for it.
struct GradInput {
  std::string name;
  Tensor value;
  Tensor analytic;
};

// Runs the forward (which must read the current contents of the inputs and return fresh
// outputs) at x ± h·e_i for every element of every input and compares with the analytic
// gradients, as described above. Failures name the input and the element.
::testing::AssertionResult CheckGradients(const std::function<std::vector<Tensor>()>& forward,
                                          const std::vector<Tensor>& projections,
                                          const std::vector<GradInput>& inputs);

// ‖a − b‖∞ ≤ tol · max(‖b‖∞, tiny): the f32 path against the f64 path. f32 rounding errors are
// relative to the magnitudes being summed, not to each result (which may cancel), so the
// comparison is normwise. a may be f32 or f64, b f64.
::testing::AssertionResult NormwiseClose(const std::string& what, const Tensor& a, const Tensor& b,
                                         double tol);

// Elementwise |a − b| ≤ tol · max(|a|, |b|), for results that should agree to rounding.
::testing::AssertionResult ElementwiseClose(const std::string& what, const Tensor& a,
                                            const Tensor& b, double tol);

// Same dtype, shape and bytes.
::testing::AssertionResult BitwiseEqual(const std::string& what, const Tensor& a, const Tensor& b);

// Checks that `backward` ACCUMULATES into `grads` (f64): with the grads zeroed, one call gives g;
// starting from random G0 (entries in [−1, 1)) one call gives G0 + g, and two calls from zero
// give 2g. A kernel that sums several terms into one element adds them onto the old value one by
// one, so the results differ from G0 + g by re-association rounding: ~(terms)·ε·max|g|, far
// below kAccumulateTol·max|g| = 1e-12·max|g|, while overwriting instead of accumulating is off
// by O(|G0|) or O(|g|).
constexpr double kAccumulateTol = 1e-12;
void ExpectAccumulates(const std::function<void()>& backward, const std::vector<Tensor>& grads,
                       std::mt19937_64& rng);

}  // namespace aoetron::optest
