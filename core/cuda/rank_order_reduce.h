// The device side of the deterministic reductions of the NCCL communicator (parallel/nccl/):
// contributions combined in rank order, exactly as parallel/rank_order_reduction.h does on the
// host, so a reduction over GPUs gives the same bits as the MPI backend's over the same inputs.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/dtype.h"

namespace aoetron::cuda {

enum class RankOrderOp : int { kSum = 0, kMax = 1 };

// out[i] = ((c_0[i] op c_1[i]) op c_2[i]) ... op c_{p-1}[i] for i < count, where contribution r
// is stacked[r·count + i], evaluated in `dtype` (f32, f64, i32, i64; bf16 in f32, rounded once).
// Sum of integers wraps (two's complement); max returns NaN if any contribution is NaN, and between
// equal values the lower rank's wins. `out` must not overlap `stacked`. Enqueued on `stream`.
void ReduceInRankOrder(RankOrderOp op, DType dtype, const void* stacked, int p, int64_t count,
                       void* out, cudaStream_t stream);

}  // namespace aoetron::cuda
