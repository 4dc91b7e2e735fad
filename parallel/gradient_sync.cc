#include "parallel/gradient_sync.h"

#include <cmath>

#include "core/check.h"
#include "core/ops/elementwise.h"

namespace aoetron::parallel {

std::vector<GradientBucket> PlanGradientBuckets(const std::vector<FlatSegment>& segments,
                                                int64_t bucket_elements, int dp_size, int dp_rank,
                                                int edp_size, int edp_rank) {
  AOETRON_CHECK(bucket_elements >= 1) << "bucket size " << bucket_elements;
  std::vector<GradientBucket> buckets;
  int64_t expected_offset = 0;
  auto close = [&](GradientBucket bucket) {
    bucket.group_size = bucket.expert ? edp_size : dp_size;
    bucket.group_rank = bucket.expert ? edp_rank : dp_rank;
    bucket.shard_size = (bucket.numel() + bucket.group_size - 1) / bucket.group_size;
    bucket.shard_begin = std::min(bucket.end, bucket.begin + bucket.shard_size * bucket.group_rank);
    bucket.shard_end = std::min(bucket.end, bucket.shard_begin + bucket.shard_size);
    bucket.shard_slot = buckets.empty() ? 0 : buckets.back().shard_slot + buckets.back().shard_size;
    buckets.push_back(bucket);
  };
  bool open = false;
  GradientBucket current;
  for (const FlatSegment& segment : segments) {
    AOETRON_CHECK_EQ(segment.offset, expected_offset) << "segments must tile the flat buffer";
    expected_offset += segment.numel;
    if (segment.numel == 0) continue;
    if (open && current.expert != segment.expert) {
      close(current);
      open = false;
    }
    // Pour the segment into buckets of at most bucket_elements.
    int64_t position = segment.offset;
    const int64_t segment_end = segment.offset + segment.numel;
    while (position < segment_end) {
      if (!open) {
        current = GradientBucket{};
        current.begin = current.end = position;
        current.expert = segment.expert;
        open = true;
      }
      const int64_t take = std::min(segment_end - position, bucket_elements - current.numel());
      current.end += take;
      position += take;
      if (current.numel() == bucket_elements) {
        close(current);
        open = false;
      }
    }
  }
  if (open) close(current);
  return buckets;
}

GradientSync::GradientSync(Tensor flat_grads, std::vector<FlatSegment> segments,
                           ProcessGroups& groups, int64_t bucket_bytes)
    : flat_grads_(flat_grads), segments_(std::move(segments)), groups_(&groups) {
  AOETRON_CHECK(flat_grads_.dtype() == DType::kF32 && flat_grads_.rank() == 1)
      << "GradientSync: a flat f32 gradient buffer, got " << flat_grads_.DebugString();
  const ProcessGrid& grid = groups.grid();
  buckets_ = PlanGradientBuckets(segments_, std::max<int64_t>(1, bucket_bytes / 4), grid.dp_size(),
                                 grid.dp_rank(), grid.expert_dp_size(), grid.expert_dp_rank());
  AOETRON_CHECK(buckets_.empty() || buckets_.back().end == flat_grads_.numel())
      << "GradientSync: the segments cover " << (buckets_.empty() ? 0 : buckets_.back().end)
      << " of " << flat_grads_.numel() << " gradient elements";
}

void GradientSync::AllReduce() {
  StartStep();
  Finish();
}

void GradientSync::StartStep(bool check_finite) {
  AOETRON_CHECK(pending_.empty() && unstarted_ == 0) << "GradientSync: StartStep before Finish";
  unstarted_ = buckets_.size();
  check_finite_ = check_finite;
  local_finite_ = true;
}

void GradientSync::GradientsReadyFrom(int first_segment) {
  AOETRON_CHECK(first_segment >= 0 && first_segment < static_cast<int>(segments_.size()))
      << "GradientSync: segment " << first_segment << " of " << segments_.size();
  const int64_t ready_from = segments_[first_segment].offset;
  while (unstarted_ > 0 && buckets_[unstarted_ - 1].begin >= ready_from) {
    const GradientBucket& bucket = buckets_[--unstarted_];
    Tensor grads = flat_grads_.Rows(bucket.begin, bucket.end);
    if (check_finite_ && local_finite_) local_finite_ = std::isfinite(ops::SumSquares(grads));
    if (bucket.group_size == 1) continue;
    Communicator& comm = bucket.expert ? groups_->expert_data_parallel() : groups_->data_parallel();
    pending_.push_back(comm.StartAllReduce(grads, ReduceOp::kSum));
  }
  // Let the started ones move while backward goes on.
  for (std::unique_ptr<PendingCollective>& p : pending_) p->Test();
}

void GradientSync::Finish() {
  if (!segments_.empty()) GradientsReadyFrom(0);
  for (std::unique_ptr<PendingCollective>& p : pending_) p->Wait();
  pending_.clear();
  AOETRON_CHECK_EQ(unstarted_, size_t{0});
}

double GradientSync::LocalSquaredNorm() const {
  return ShardSquaredNorm(buckets_, segments_,
                          [&](const GradientBucket&, int64_t begin, int64_t end) {
                            return flat_grads_.Rows(begin, end);
                          });
}

}  // namespace aoetron::parallel
