#include "parallel/distributed_optimizer.h"

#include <algorithm>
#include <cstring>

#include "core/check.h"
#include "core/ops/elementwise.h"

namespace aoetron::parallel {

DistributedOptimizer::DistributedOptimizer(Tensor flat_values, Tensor flat_grads,
                                           std::vector<FlatSegment> segments, ProcessGroups& groups,
                                           int64_t bucket_bytes, const AdamWHyperParams& hp)
    : flat_values_(flat_values),
      flat_grads_(flat_grads),
      segments_(std::move(segments)),
      groups_(&groups),
      hp_(hp) {
  for (const Tensor* t : {&flat_values_, &flat_grads_}) {
    AOETRON_CHECK(t->dtype() == DType::kF32 && t->rank() == 1 &&
                  t->device() == flat_values_.device())
        << "DistributedOptimizer: flat f32 buffers on one device, got " << t->DebugString();
  }
  AOETRON_CHECK_EQ(flat_values_.numel(), flat_grads_.numel());
  const ProcessGrid& grid = groups.grid();
  buckets_ = PlanGradientBuckets(segments_, std::max<int64_t>(1, bucket_bytes / 4), grid.dp_size(),
                                 grid.dp_rank(), grid.expert_dp_size(), grid.expert_dp_rank());
  int64_t slots = 0, largest = 0;
  for (const GradientBucket& b : buckets_) {
    slots += b.shard_size;
    largest = std::max(largest, b.shard_size * b.group_size);
  }
  AOETRON_CHECK(buckets_.empty() || buckets_.back().end == flat_values_.numel())
      << "DistributedOptimizer: the segments do not cover the flat buffer";
  const Device device = flat_values_.device();
  for (auto [buffer, numel] : {std::pair{&shard_grads_, slots},
                               {&shard_m_, slots},
                               {&shard_v_, slots},
                               {&own_values_, slots},
                               {&staging_, std::max<int64_t>(largest, 1)}}) {
    *buffer = Tensor::Empty({numel}, DType::kF32, device);
    ops::Fill(*buffer, 0.0);
  }
}

Communicator& DistributedOptimizer::GroupOf(const GradientBucket& bucket) {
  return bucket.expert ? groups_->expert_data_parallel() : groups_->data_parallel();
}

void DistributedOptimizer::ReduceScatterGradients() {
  for (size_t i = buckets_.size(); i-- > 0;) {
    const GradientBucket& b = buckets_[i];
    Tensor shard = shard_grads_.Rows(b.shard_slot, b.shard_slot + b.shard_size);
    const Tensor bucket_grads = flat_grads_.Rows(b.begin, b.end);
    if (b.group_size == 1) {
      ops::Copy(bucket_grads, shard);
      continue;
    }
    // [bucket | zeros]: group_size · shard_size elements, shard r at r·shard_size.
    const int64_t padded = b.shard_size * b.group_size;
    Tensor staged = staging_.Rows(0, b.numel());
    ops::Copy(bucket_grads, staged);
    Tensor padding = staging_.Rows(b.numel(), padded);
    ops::Fill(padding, 0.0);
    GroupOf(b).ReduceScatter(staging_.Rows(0, padded), shard);
  }
}

double DistributedOptimizer::LocalSquaredNorm() const {
  return ShardSquaredNorm(buckets_, segments_,
                          [&](const GradientBucket& b, int64_t begin, int64_t end) {
                            const int64_t slot = b.shard_slot + (begin - b.shard_begin);
                            return shard_grads_.Rows(slot, slot + (end - begin));
                          });
}

void DistributedOptimizer::ScaleGradients(double factor) { ops::Scale(shard_grads_, factor); }

void DistributedOptimizer::Step(double lr) {
  ++steps_taken_;
  for (const GradientBucket& b : buckets_) {
    ForEachSegmentPiece(
        segments_, b.shard_begin, b.shard_end, [&](int segment, int64_t begin, int64_t end) {
          const int64_t slot = b.shard_slot + (begin - b.shard_begin);
          const int64_t n = end - begin;
          Tensor value = flat_values_.Rows(begin, end);
          Tensor grad = shard_grads_.Rows(slot, slot + n);
          Tensor m = shard_m_.Rows(slot, slot + n);
          Tensor v = shard_v_.Rows(slot, slot + n);
          const float decay = segments_[segment].weight_decay ? hp_.weight_decay : 0.0f;
          AdamWUpdate(value, grad, m, v, static_cast<float>(lr), decay, hp_, steps_taken_);
        });
  }
  // Every rank's shard of the values → everyone's flat_values.
  for (const GradientBucket& b : buckets_) {
    Tensor own = own_values_.Rows(b.shard_slot, b.shard_slot + (b.shard_end - b.shard_begin));
    ops::Copy(flat_values_.Rows(b.shard_begin, b.shard_end), own);
  }
  GatherShards(own_values_, flat_values_);
}

void DistributedOptimizer::GatherShards(const Tensor& shards, Tensor flat) {
  for (const GradientBucket& b : buckets_) {
    Tensor out = flat.Rows(b.begin, b.end);
    if (b.group_size == 1) {
      ops::Copy(shards.Rows(b.shard_slot, b.shard_slot + b.numel()), out);
      continue;
    }
    const int64_t padded = b.shard_size * b.group_size;
    // Padding of a short last shard travels but is dropped on arrival.
    GroupOf(b).AllGather(shards.Rows(b.shard_slot, b.shard_slot + b.shard_size),
                         staging_.Rows(0, padded));
    ops::Copy(staging_.Rows(0, b.numel()), out);
  }
}

std::vector<OptimizerStatePiece> DistributedOptimizer::LocalStatePieces() {
  std::vector<OptimizerStatePiece> pieces;
  for (const GradientBucket& b : buckets_) {
    ForEachSegmentPiece(segments_, b.shard_begin, b.shard_end,
                        [&](int segment, int64_t begin, int64_t end) {
                          const int64_t slot = b.shard_slot + (begin - b.shard_begin);
                          OptimizerStatePiece piece;
                          piece.segment = segment;
                          piece.segment_begin = begin - segments_[segment].offset;
                          piece.segment_end = end - segments_[segment].offset;
                          piece.m = shard_m_.Rows(slot, slot + (end - begin));
                          piece.v = shard_v_.Rows(slot, slot + (end - begin));
                          pieces.push_back(piece);
                        });
  }
  return pieces;
}

void DistributedOptimizer::GatherState(Tensor flat_m, Tensor flat_v) {
  AOETRON_CHECK(flat_m.numel() == flat_values_.numel() && flat_v.numel() == flat_values_.numel())
      << "GatherState: buffers of " << flat_values_.numel() << " elements expected";
  GatherShards(shard_m_, flat_m);
  GatherShards(shard_v_, flat_v);
}

void DistributedOptimizer::LoadState(const Tensor& flat_m, const Tensor& flat_v,
                                     int64_t steps_taken) {
  AOETRON_CHECK(flat_m.numel() == flat_values_.numel() && flat_v.numel() == flat_values_.numel())
      << "LoadState: buffers of " << flat_values_.numel() << " elements expected";
  ops::Fill(shard_m_, 0.0);
  ops::Fill(shard_v_, 0.0);
  for (const GradientBucket& b : buckets_) {
    const int64_t n = b.shard_end - b.shard_begin;
    Tensor m = shard_m_.Rows(b.shard_slot, b.shard_slot + n);
    Tensor v = shard_v_.Rows(b.shard_slot, b.shard_slot + n);
    ops::Copy(flat_m.Rows(b.shard_begin, b.shard_end), m);
    ops::Copy(flat_v.Rows(b.shard_begin, b.shard_end), v);
  }
  steps_taken_ = steps_taken;
}

}  // namespace aoetron::parallel
