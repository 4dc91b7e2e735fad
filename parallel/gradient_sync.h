// Data-parallel gradient synchronisation: the flat gradient buffer of a model replica is summed
// over the ranks that hold the same parameters, in buckets, and the global gradient norm counts
// every unique parameter element once.
//
// The buffer is described by FlatSegments (one per parameter, in the parameter set's order),
// so this file knows nothing of models/: the launcher translates Parameter::sharding.
//   - A non-expert segment is replicated over the data-parallel group `dp` (same tp_rank): its
//     gradient is summed there.
//   - An expert segment (owned by one ep rank, replicated over expert-data-parallel copies) is
//     summed over `edp`. (With ep = 1, edp has the same members as dp; the launcher then marks
//     no segment as expert so that buckets can mix both.)
//
// Buckets. Consecutive segments of the same group are cut into buckets of at most
// bucket_elements (a bucket is a contiguous flat range; a large parameter may span several
// buckets). Buckets are communicated in reverse order (the output layers first, as backward
// produces them), one collective each. Every rank of a group has the same bucket plan, because
// every rank registers the same parameter shapes in the same order.
//
// Shards. Each bucket of n elements over a group of p ranks is cut into p shards of
// s = ceil(n / p) elements (the last ones shorter or empty): group rank r owns
// [begin + r·s, min(begin + (r+1)·s, end)). ZeRO-1 (distributed_optimizer.h) keeps optimizer
// state for its shards only; the gradient norm is summed shard by shard in both modes, so the
// two compute bit-identical norms.
//
// Global norm. After the sum over dp/edp every replica holds the same gradient, so each unique
// element must be counted once:
//     ‖g‖² = Σ over world ranks R of Σ over R's shards, over elements e of a segment counted by R,
//            g_e²
// where a segment is counted by a rank unless it is a tensor-parallel replica on tp_rank > 0
// (tp-split parameters hold different elements on each tp rank and are counted by every one;
// expert parameters are distinct per ep rank and, through the shards, counted once per edp
// group; replicated parameters once per dp group). LocalSquaredNorm gives this rank's term in
// double; the caller sums it over the world (AllReduce, rank order) and takes the square root.
//
// Overlap with backward. Backward completes gradients from the last parameter down (the model's
// GradientsReadyHook reports each finished suffix). GradientsReadyFrom(first) starts, with
// Communicator::StartAllReduce, every bucket lying wholly in the finished suffix that has not
// started yet (highest first, so the order is the same on every rank), and advances the pending
// ones; Finish() starts the rest and waits for all. So the last layers' buckets travel while the
// first layers still compute — as far as the backend progresses in the background (MPI: inside
// MPI calls, i.e. at the next hook or the model's own tp/ep collectives; NCCL: on its stream).
// AllReduce() is the same without a hook: every bucket started and waited for at once.
// Before a bucket starts, its local gradient is checked for NaN/Inf (a pass the trainer needs
// anyway to name the rank a non-finite gradient came from, which after the sum it could not).
//
// Determinism: collectives reduce in rank order (communicator.h), the per-shard squared sums use
// a fixed summation order, so results are bitwise reproducible for a fixed layout.
// Thread safety: none; one thread drives a GradientSync. Collective: every rank of the job calls
// the same methods in the same order.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/ops/elementwise.h"
#include "core/tensor.h"
#include "parallel/communicator.h"
#include "parallel/process_groups.h"

namespace aoetron::parallel {

// One parameter's place in the flat value/gradient buffers.
struct FlatSegment {
  int64_t offset = 0;  // first element in the flat buffer
  int64_t numel = 0;
  bool expert = false;          // summed over edp instead of dp
  bool counted_in_norm = true;  // false on ranks holding a copy another rank counts
  bool weight_decay = true;     // for the optimizer (AdamW λ applies)
};

struct GradientBucket {
  int64_t begin = 0, end = 0;  // flat range [begin, end)
  bool expert = false;         // reduced over edp (else dp)
  int group_size = 1;          // ranks in that group
  int group_rank = 0;          // this rank in it
  int64_t shard_size = 0;      // ceil((end − begin) / group_size)
  // This rank's shard, flat range [shard_begin, shard_end) (empty for trailing ranks of tiny
  // buckets), and where it starts in a per-rank buffer holding one shard_size slot per bucket.
  int64_t shard_begin = 0, shard_end = 0;
  int64_t shard_slot = 0;
  int64_t numel() const { return end - begin; }
};

// Cuts `segments` (ascending, contiguous from 0) into buckets of at most bucket_elements (≥ 1).
// `dp` and `edp` give the sizes and this rank's position in the two groups.
std::vector<GradientBucket> PlanGradientBuckets(const std::vector<FlatSegment>& segments,
                                                int64_t bucket_elements, int dp_size, int dp_rank,
                                                int edp_size, int edp_rank);

class GradientSync {
 public:
  // `flat_grads`: f32 buffer (on the model's device) of the whole local replica; `segments` cover
  // it in order. `groups` outlives this object. bucket_bytes: bucket size in bytes of f32 (≥ 4).
  GradientSync(Tensor flat_grads, std::vector<FlatSegment> segments, ProcessGroups& groups,
               int64_t bucket_bytes);

  // Sums every bucket over its group in place (buckets in reverse order). Afterwards every
  // replica holds the same summed gradient. Equivalent to StartStep(); Finish().
  void AllReduce();

  // Overlapped form (file comment): StartStep() before the backward that completes the
  // gradients, GradientsReadyFrom(s) each time segments s, s+1, ... are final (decreasing s),
  // Finish() after it. Results are bitwise those of AllReduce().
  // check_finite: check each bucket's local gradient for NaN/Inf before it starts (one pass over
  // the buffer; needed to name a culprit rank only when there is more than one rank).
  void StartStep(bool check_finite = true);
  void GradientsReadyFrom(int first_segment);
  void Finish();
  // Whether every local gradient element checked since StartStep() was finite (before the sum;
  // all of them once Finish() has returned; true without check_finite).
  bool local_gradients_finite() const { return local_finite_; }

  // This rank's term of the global ‖g‖² (file comment), from the current gradient.
  double LocalSquaredNorm() const;

  const std::vector<GradientBucket>& buckets() const { return buckets_; }
  const std::vector<FlatSegment>& segments() const { return segments_; }

 private:
  Tensor flat_grads_;
  std::vector<FlatSegment> segments_;
  ProcessGroups* groups_;
  std::vector<GradientBucket> buckets_;
  // Overlap state of the current step: buckets [0, unstarted_) have not started; pending_ holds
  // the started ones not yet known complete, oldest first.
  size_t unstarted_ = 0;
  std::vector<std::unique_ptr<PendingCollective>> pending_;
  bool check_finite_ = true;
  bool local_finite_ = true;
};

// Calls visit(segment_index, flat_begin, flat_end) for every non-empty intersection of
// [range_begin, range_end) with a segment, in ascending order.
template <typename Visit>
void ForEachSegmentPiece(const std::vector<FlatSegment>& segments, int64_t range_begin,
                         int64_t range_end, Visit&& visit);

// Σ over this rank's shard pieces of counted segments of g², with the piece read through
// `read(bucket, flat_begin, flat_end)` → a Tensor view of those gradient elements, each piece
// summed by ops::SumSquares (double, fixed chunks: independent of the thread count and of where
// the view starts). Shared by both modes so that they sum identical pieces in an identical order.
template <typename Read>
double ShardSquaredNorm(const std::vector<GradientBucket>& buckets,
                        const std::vector<FlatSegment>& segments, Read&& read);

// ---- implementation of the templates ------------------------------------------------------

template <typename Visit>
void ForEachSegmentPiece(const std::vector<FlatSegment>& segments, int64_t range_begin,
                         int64_t range_end, Visit&& visit) {
  if (range_begin >= range_end) return;
  // Binary search for the first segment ending after range_begin.
  size_t lo = 0, hi = segments.size();
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (segments[mid].offset + segments[mid].numel <= range_begin) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  for (size_t i = lo; i < segments.size() && segments[i].offset < range_end; ++i) {
    const int64_t begin = std::max(range_begin, segments[i].offset);
    const int64_t end = std::min(range_end, segments[i].offset + segments[i].numel);
    if (begin < end) visit(static_cast<int>(i), begin, end);
  }
}

template <typename Read>
double ShardSquaredNorm(const std::vector<GradientBucket>& buckets,
                        const std::vector<FlatSegment>& segments, Read&& read) {
  double sum = 0.0;
  for (size_t b = 0; b < buckets.size(); ++b) {
    const GradientBucket& bucket = buckets[b];
    ForEachSegmentPiece(segments, bucket.shard_begin, bucket.shard_end,
                        [&](int segment, int64_t begin, int64_t end) {
                          if (!segments[segment].counted_in_norm) return;
                          sum += ops::SumSquares(read(bucket, begin, end));
                        });
  }
  return sum;
}

}  // namespace aoetron::parallel
