// DistributedOptimizer: ZeRO-1 AdamW. Each data-parallel rank keeps the fp32 moments m, v of
// its shards only (1/dp of the non-expert elements, 1/edp of the expert elements) and updates
// only those parameter elements; the updated parameters are then all-gathered.
//
// One step, with the bucket plan and shards of gradient_sync.h:
//   1. ReduceScatterGradients: for each bucket (reverse order), the bucket's gradient, zero-
//      padded to group_size · shard_size, is reduce-scattered over its group (dp, or edp for
//      expert buckets): this rank receives the summed gradient of its shard.
//   2. LocalSquaredNorm: this rank's term of the global ‖g‖², from its shards (the same pieces
//      in the same order as GradientSync, so the norm is bitwise the same as without ZeRO).
//   3. ScaleGradients(factor): clipping, on the shards.
//   4. Step(lr): AdamW on each (shard ∩ parameter) piece (λ = 0 for segments without weight
//      decay), then for each bucket the shards of the parameters are all-gathered into the
//      flat value buffer of every rank.
// Why bit-identical to GradientSync + AdamW on the whole buffer: ReduceScatter's block equals
// AllReduce's block bitwise (communicator.h), clipping and AdamW are element-wise, and the
// all-gather moves bits. Tested in tests/distributed.
//
// Memory per rank: m, v and the reduced gradient for its shards (3 · N / dp floats, padding
// aside) plus one staging buffer of the largest bucket's padded size.
//
// Checkpoints: LocalStatePieces() gives views of the moments this rank holds, per parameter
// segment; GatherState / LoadState convert to and from whole-replica moments laid out like the
// flat value buffer (the layout of the non-ZeRO AdamWOptimizer), so a checkpoint need not depend
// on the optimizer mode or the dp size.
//
// Thread safety: none. Collective: every rank calls the same methods in the same order.
#pragma once

#include <cstdint>
#include <vector>

#include "core/optim/adamw.h"
#include "core/tensor.h"
#include "parallel/gradient_sync.h"
#include "parallel/process_groups.h"

namespace aoetron::parallel {

// The moments this rank holds for part of one segment (parameter): elements
// [segment_begin, segment_end) of the segment's flat range (0 = its first element).
struct OptimizerStatePiece {
  int segment = 0;
  int64_t segment_begin = 0, segment_end = 0;
  Tensor m, v;  // f32 [segment_end − segment_begin], views into this optimizer's buffers
};

class DistributedOptimizer {
 public:
  // `flat_values`, `flat_grads`: the replica's f32 CPU buffers; `segments` tile them in order.
  // `groups` outlives the optimizer. Moments start at zero.
  DistributedOptimizer(Tensor flat_values, Tensor flat_grads, std::vector<FlatSegment> segments,
                       ProcessGroups& groups, int64_t bucket_bytes, const AdamWHyperParams& hp);

  // Step 1: this rank's shards of the summed gradient (the full flat_grads is left as it was).
  void ReduceScatterGradients();
  // Step 2: this rank's term of the global ‖g‖² (gradient_sync.h).
  double LocalSquaredNorm() const;
  // Step 3: shard gradients *= factor.
  void ScaleGradients(double factor);
  // Step 4: AdamW on the shards at learning rate `lr`, then all-gather the parameters.
  void Step(double lr);

  int64_t steps_taken() const { return steps_taken_; }
  const std::vector<GradientBucket>& buckets() const { return buckets_; }
  const std::vector<FlatSegment>& segments() const { return segments_; }

  // ---- Checkpoint support ----------------------------------------------------------------
  std::vector<OptimizerStatePiece> LocalStatePieces();
  // Collective: every rank receives the whole replica's moments in `flat_m`, `flat_v` (f32,
  // numel = flat_values.numel(), laid out like flat_values).
  void GatherState(Tensor flat_m, Tensor flat_v);
  // Local: takes this rank's shards from whole-replica moments and sets the step counter.
  void LoadState(const Tensor& flat_m, const Tensor& flat_v, int64_t steps_taken);

 private:
  Communicator& GroupOf(const GradientBucket& bucket);
  // All-gathers the shards held in `shards` (one slot per bucket) into `flat` (whole replica).
  void GatherShards(const Tensor& shards, Tensor flat);

  Tensor flat_values_, flat_grads_;
  std::vector<FlatSegment> segments_;
  ProcessGroups* groups_;
  std::vector<GradientBucket> buckets_;
  AdamWHyperParams hp_;
  Tensor shard_grads_, shard_m_, shard_v_;  // f32, one shard_size slot per bucket
  Tensor own_values_;                       // this rank's updated shards, for the all-gather
  Tensor staging_;                          // one padded bucket
  int64_t steps_taken_ = 0;
};

}  // namespace aoetron::parallel
