#include "launcher/study/power_law_fit.h"

#include <cmath>
#include <set>

#include "absl/strings/str_format.h"

namespace aoetron::study {

absl::StatusOr<PowerLawFit> FitPowerLaw(const std::vector<double>& compute,
                                        const std::vector<double>& loss) {
  if (compute.size() != loss.size()) {
    return absl::InvalidArgumentError("compute and loss must have the same length");
  }
  const size_t n = compute.size();
  std::set<double> distinct;
  for (size_t i = 0; i < n; ++i) {
    if (!(compute[i] > 0) || !(loss[i] > 0) || !std::isfinite(compute[i]) ||
        !std::isfinite(loss[i])) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "point %d: compute %g and loss %g must be finite and > 0", i, compute[i], loss[i]));
    }
    distinct.insert(compute[i]);
  }
  if (distinct.size() < 3) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "a power law needs at least 3 distinct compute values; there are %d", distinct.size()));
  }
  double x_mean = 0, y_mean = 0;
  for (size_t i = 0; i < n; ++i) {
    x_mean += std::log(compute[i]);
    y_mean += std::log(loss[i]);
  }
  x_mean /= static_cast<double>(n);
  y_mean /= static_cast<double>(n);
  double sxx = 0, sxy = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    const double dx = std::log(compute[i]) - x_mean, dy = std::log(loss[i]) - y_mean;
    sxx += dx * dx;
    sxy += dx * dy;
    syy += dy * dy;
  }
  const double slope = sxy / sxx;
  const double intercept = y_mean - slope * x_mean;
  double ssr = 0;
  for (size_t i = 0; i < n; ++i) {
    const double r = std::log(loss[i]) - (intercept + slope * std::log(compute[i]));
    ssr += r * r;
  }
  const double s2 = ssr / static_cast<double>(n - 2);
  PowerLawFit fit;
  fit.b = -slope;
  fit.a = std::exp(intercept);
  fit.se_b = std::sqrt(s2 / sxx);
  fit.se_log_a = std::sqrt(s2 * (1.0 / static_cast<double>(n) + x_mean * x_mean / sxx));
  fit.se_a = fit.a * fit.se_log_a;
  fit.r_squared = syy > 0 ? 1.0 - ssr / syy : 1.0;
  fit.points = static_cast<int>(n);
  fit.distinct_compute = static_cast<int>(distinct.size());
  return fit;
}

}  // namespace aoetron::study
