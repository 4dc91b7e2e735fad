// AdamW (Loshchilov & Hutter 2019), decoupled weight decay, bias-corrected moments.
//
// For step s ≥ 1 (1-based), learning rate η, gradient g:
//   m ← β1·m + (1−β1)·g          v ← β2·v + (1−β2)·g²
//   m̂ = m / (1−β1^s)             v̂ = v / (1−β2^s)
//   θ ← θ − η·(m̂ / (sqrt(v̂) + ε) + λ·θ)
// λ is zero for parameters that take no decay (norm weights); the caller passes it per tensor.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace aoetron {

struct AdamWHyperParams {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;
};

// One update of param (in place) and its moments m, v (f32, same shape as param).
// `step` is the 1-based optimizer step, `lr` the learning rate for it. `weight_decay` is this
// tensor's λ; hp.weight_decay is not read here (the caller resolves it per tensor).
// All four on one device: the CPU, or CUDA in a build with that backend (the same math per
// element). Element-wise, so thread-count independent.
void AdamWUpdate(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, float lr,
                 float weight_decay, const AdamWHyperParams& hp, int64_t step);

}  // namespace aoetron
