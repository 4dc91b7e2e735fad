// SwiGLU activation, elementwise over [n] = [N·F] values.
//
//   σ = σ(g),  SiLU(g) = g·σ,   out = SiLU(g) · u
//   dSiLU/dg = σ + g·σ·(1 − σ) = σ·(1 + g·(1 − σ))
//   dgate += dout · u · σ·(1 + g·(1 − σ)),   dup += dout · SiLU(g)
// Exp<float> is the vectorisable exp (vec_math.h): these loops touch N·F values per expert
// layer, the largest activations of the model after the logits.
#include <omp.h>

#include "core/ops/cpu/kernels.h"
#include "core/ops/cpu/vec_math.h"

namespace aoetron::ops::cpu {
namespace {

constexpr int64_t kParallelMinElements = int64_t{1} << 14;

}  // namespace

template <typename T>
void SwiGluForward(const T* gate, const T* up, int64_t n, T* out) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMinElements)
  for (int64_t i = 0; i < n; ++i) {
    const T g = gate[i];
    out[i] = g * Sigmoid<T>(g) * up[i];
  }
}

template <typename T>
void SwiGluBackward(const T* dout, const T* gate, const T* up, int64_t n, T* dgate, T* dup) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMinElements)
  for (int64_t i = 0; i < n; ++i) {
    const T g = gate[i];
    const T s = Sigmoid<T>(g);
    dgate[i] += dout[i] * up[i] * s * (T(1) + g * (T(1) - s));
    dup[i] += dout[i] * g * s;
  }
}

template void SwiGluForward<float>(const float*, const float*, int64_t, float*);
template void SwiGluForward<double>(const double*, const double*, int64_t, double*);
template void SwiGluBackward<float>(const float*, const float*, const float*, int64_t, float*,
                                    float*);
template void SwiGluBackward<double>(const double*, const double*, const double*, int64_t, double*,
                                     double*);

}  // namespace aoetron::ops::cpu
