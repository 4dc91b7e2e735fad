// Rotary position embeddings (Su et al. 2021), "rotate-half" pairing as in GPT-NeoX and Llama.
//
// For head dimension hd and pair index i in [0, hd/2), at position p:
//   θ_i = theta^(−2i/hd),  (a, b) = (v[i], v[i + hd/2])
//   v'[i] = a·cos(pθ_i) − b·sin(pθ_i),   v'[i + hd/2] = a·sin(pθ_i) + b·cos(pθ_i)
// Applied to the q and k parts of a packed qkv tensor; v is left alone. Position p is
// first_position + the index along T (training: every sequence starts at 0; decoding with a KV
// cache: the new tokens' positions).
#pragma once

#include "core/tensor.h"

namespace aoetron::ops {

// qkv: [B, T, 3, H, hd], rotated in place (q and k only).
void RopeForward(Tensor& qkv, float theta, int64_t first_position = 0);

// The rotation is orthogonal, so its backward is the inverse rotation of the q and k gradient
// parts, in place on dqkv: [B, T, 3, H, hd]. (The one exception to "backward accumulates":
// it transforms dqkv where it stands.)
void RopeBackward(Tensor& dqkv, float theta);

}  // namespace aoetron::ops
