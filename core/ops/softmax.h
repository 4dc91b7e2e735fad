// Row-wise softmax, for gate weights (over the K selected scores) and for the load-balancing
// loss's P (over all n scores).
#pragma once

#include "core/tensor.h"

namespace aoetron::ops {

// y[t, :] = softmax(x[t, :]).  x, y: [N, m]. Max-subtracted, so any finite input is safe.
void RowSoftmaxForward(const Tensor& x, Tensor& y);

// dx += y ⊙ (dy − Σ_j y_j dy_j) per row.
void RowSoftmaxBackward(const Tensor& dy, const Tensor& y, Tensor& dx);

}  // namespace aoetron::ops
