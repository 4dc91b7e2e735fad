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
    AOETRON_CHECK(t->dtype() == DType::kF32 && t->device().is_cpu() && t->rank() == 1)
        << "DistributedOptimizer: flat f32 CPU buffers, got " << t->DebugString();
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
  shard_grads_ = Tensor::Zeros({slots}, DType::kF32);
  shard_m_ = Tensor::Zeros({slots}, DType::kF32);
  shard_v_ = Tensor::Zeros({slots}, DType::kF32);
  own_values_ = Tensor::Zeros({slots}, DType::kF32);
  staging_ = Tensor::Zeros({std::max<int64_t>(largest, 1)}, DType::kF32);
}

Communicator& DistributedOptimizer::GroupOf(const GradientBucket& bucket) {
  return bucket.expert ? groups_->expert_data_parallel() : groups_->data_parallel();
}

void DistributedOptimizer::ReduceScatterGradients() {
  const float* grads = flat_grads_.data<float>();
  float* staging = staging_.data<float>();
  for (size_t i = buckets_.size(); i-- > 0;) {
    const GradientBucket& b = buckets_[i];
    Tensor shard = shard_grads_.Rows(b.shard_slot, b.shard_slot + b.shard_size);
    if (b.group_size == 1) {
      std::memcpy(shard.data<float>(), grads + b.begin, b.numel() * sizeof(float));
      continue;
    }
    // [bucket | zeros]: group_size · shard_size elements, shard r at r·shard_size.
    const int64_t padded = b.shard_size * b.group_size;
    std::memcpy(staging, grads + b.begin, b.numel() * sizeof(float));
    std::fill(staging + b.numel(), staging + padded, 0.0f);
    GroupOf(b).ReduceScatter(staging_.Rows(0, padded), shard);
  }
}

double DistributedOptimizer::LocalSquaredNorm() const {
  const float* shards = shard_grads_.data<float>();
  return ShardSquaredNorm(buckets_, segments_, [&](const GradientBucket& b, int64_t flat) {
    return shards + b.shard_slot + (flat - b.shard_begin);
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
  float* own = own_values_.data<float>();
  const float* values = flat_values_.data<float>();
  for (const GradientBucket& b : buckets_) {
    std::memcpy(own + b.shard_slot, values + b.shard_begin,
                (b.shard_end - b.shard_begin) * sizeof(float));
  }
  GatherShards(own_values_, flat_values_);
}

void DistributedOptimizer::GatherShards(const Tensor& shards, Tensor flat) {
  float* staging = staging_.data<float>();
  float* out = flat.data<float>();
  const float* in = shards.data<float>();
  for (const GradientBucket& b : buckets_) {
    if (b.group_size == 1) {
      std::memcpy(out + b.begin, in + b.shard_slot, b.numel() * sizeof(float));
      continue;
    }
    const int64_t padded = b.shard_size * b.group_size;
    // Padding of a short last shard travels but is dropped on arrival.
    GroupOf(b).AllGather(shards.Rows(b.shard_slot, b.shard_slot + b.shard_size),
                         staging_.Rows(0, padded));
    std::memcpy(out + b.begin, staging, b.numel() * sizeof(float));
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
    std::memcpy(shard_m_.data<float>() + b.shard_slot, flat_m.data<float>() + b.shard_begin,
                n * sizeof(float));
    std::memcpy(shard_v_.data<float>() + b.shard_slot, flat_v.data<float>() + b.shard_begin,
                n * sizeof(float));
  }
  steps_taken_ = steps_taken;
}

}  // namespace aoetron::parallel
