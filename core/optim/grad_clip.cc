#include "core/optim/grad_clip.h"

#include <cmath>
#include <limits>

#include "core/ops/elementwise.h"

namespace aoetron {

double GlobalSumSquares(const std::vector<Tensor>& grads) {
  // ops::SumSquares is thread-count independent per tensor; adding the per-tensor sums in the
  // order given keeps the total independent of everything but that order.
  double sum = 0.0;
  for (const Tensor& grad : grads) sum += ops::SumSquares(grad);
  return sum;
}

double ClipFactor(double norm, double max_norm) {
  if (!std::isfinite(norm)) return std::numeric_limits<double>::quiet_NaN();
  if (max_norm <= 0.0 || norm <= max_norm) return 1.0;
  return max_norm / (norm + 1e-6);
}

double ClipByGlobalNorm(std::vector<Tensor>& grads, double norm, double max_norm) {
  const double factor = ClipFactor(norm, max_norm);
  if (factor != 1.0 && std::isfinite(factor)) {
    for (Tensor& grad : grads) ops::Scale(grad, factor);
  }
  return factor;
}

}  // namespace aoetron
