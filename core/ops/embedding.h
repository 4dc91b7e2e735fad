// Token embedding lookup.
#pragma once

#include "core/tensor.h"

namespace aoetron::ops {

// out[t, :] = table[ids[t], :].   ids: i32 [N], table: [V, d], out: [N, d].
// An id outside [0, V) is a CHECK failure (data validation happens before the model).
void EmbeddingForward(const Tensor& ids, const Tensor& table, Tensor& out);

// dtable[ids[t], :] += dout[t, :] for every t, in order of t for each row (deterministic:
// threads split the d columns, never the tokens).
void EmbeddingBackward(const Tensor& ids, const Tensor& dout, Tensor& dtable);

}  // namespace aoetron::ops
