// A power law L = a·C^(−b) of loss against training compute, fitted by ordinary least squares in
// log-log space: ln L = ln a − b·ln C. With n points the residual variance is s² = SSR / (n − 2),
// and the standard errors are the usual ones of a straight-line fit:
//   se(b) = s / √Sxx,  se(ln a) = s·√(1/n + x̄²/Sxx),  x = ln C, Sxx = Σ (x − x̄)²,
// se(a) ≈ a·se(ln a) (delta method). They assume independent, equally noisy log-losses; with
// three points (one degree of freedom) they are rough.
//
// Thread safety: a pure function.
#pragma once

#include <vector>

#include "absl/status/statusor.h"

namespace aoetron::study {

struct PowerLawFit {
  double a = 0.0, b = 0.0;
  double se_a = 0.0, se_b = 0.0, se_log_a = 0.0;
  double r_squared = 0.0;    // of the log-log fit
  int points = 0;            // (C, L) pairs used
  int distinct_compute = 0;  // distinct C values among them
};

// `compute` and `loss` pair up. FailedPrecondition with fewer than 3 distinct compute values;
// InvalidArgument for a non-positive or non-finite value, or sizes that differ.
absl::StatusOr<PowerLawFit> FitPowerLaw(const std::vector<double>& compute,
                                        const std::vector<double>& loss);

}  // namespace aoetron::study
