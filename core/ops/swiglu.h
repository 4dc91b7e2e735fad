// SwiGLU activation (Shazeer 2020): out = SiLU(gate) ⊙ up, SiLU(z) = z · σ(z).
#pragma once

#include "core/tensor.h"

namespace aoetron::ops {

// gate, up, out: [N, F].
void SwiGluForward(const Tensor& gate, const Tensor& up, Tensor& out);

// dgate += dout ⊙ up ⊙ σ(gate)·(1 + gate·(1 − σ(gate))),  dup += dout ⊙ SiLU(gate).
void SwiGluBackward(const Tensor& dout, const Tensor& gate, const Tensor& up, Tensor& dgate,
                    Tensor& dup);

}  // namespace aoetron::ops
