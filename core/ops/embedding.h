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

// Vocabulary-sharded lookup (tensor parallelism: parallel/tensor_parallel.h). table_shard [V_s, d]
// holds rows [row_begin, row_begin + V_s) of a vocab_size-row table; ids in [0, vocab_size).
//   forward:  out[t, :] = table_shard[ids[t] − row_begin, :], or zeros when this shard lacks it
//   backward: dtable_shard[ids[t] − row_begin, :] += dout[t, :] for the ids it holds, t in order
// With row_begin = 0 and V_s = vocab_size these are EmbeddingForward/Backward.
void EmbeddingShardForward(const Tensor& ids, const Tensor& table_shard, int64_t row_begin,
                           int64_t vocab_size, Tensor& out);
void EmbeddingShardBackward(const Tensor& ids, const Tensor& dout, int64_t row_begin,
                            int64_t vocab_size, Tensor& dtable_shard);

}  // namespace aoetron::ops
