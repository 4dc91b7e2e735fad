// DataParallelOptimizer: what a data-parallel replica does with its gradients after backward —
// sum them over the replicas, report its term of the global norm, clip, update the f32 master
// weights with AdamW and refresh their compute copy — and the AdamW moments checkpoints save.
//
// Two implementations, chosen by parallel.zero1 (MakeDataParallelOptimizer):
//   replicated  GradientSync + AdamWOptimizer. The last micro-batch's backward starts each
//               bucket's all-reduce as soon as its layers are done (LastMicroBatchHook), so the
//               sum overlaps backward; every rank keeps the whole replica's m and v.
//   ZeRO-1      parallel::DistributedOptimizer. After backward each bucket is reduce-scattered;
//               a rank keeps m and v of its shards only, updates those elements and all-gathers
//               the masters. Bit-identical to replicated (tests/distributed).
// The trainer's step calls, in this order, once per optimizer step:
//   BeginStep → backward of every micro-batch (the last with LastMicroBatchHook()) →
//   FinishBackward → LocalGradientsFinite → ReduceGradients → LocalSquaredNorm →
//   ScaleGradients (only when clipping) → Step.
// The clip factor is core/optim/grad_clip.h's ClipFactor, for both.
//
// Collective: every rank of the job calls the same methods in the same order.
#pragma once

#include <cstdint>
#include <memory>

#include "core/optim/adamw.h"
#include "core/tensor.h"
#include "models/gpt_model.h"
#include "parallel/distributed_optimizer.h"
#include "parallel/process_groups.h"

namespace aoetron {

class DataParallelOptimizer {
 public:
  virtual ~DataParallelOptimizer() = default;

  // Before the first micro-batch's backward. `check_finite`: test each gradient bucket for
  // non-finite values before it is summed (LocalGradientsFinite).
  virtual void BeginStep(bool check_finite) = 0;
  // For the last micro-batch's backward: called with the first parameter index whose gradient
  // is complete. Empty when the implementation reduces after backward.
  virtual GradientsReadyHook LastMicroBatchHook() = 0;
  // After the last backward: what was started during backward is complete.
  virtual void FinishBackward() = 0;
  // This rank's gradients, before the sum over replicas, hold only finite values (so a NaN can
  // be blamed on the rank that produced it).
  virtual bool LocalGradientsFinite() = 0;
  // The sum over the replicas (the all-reduce already happened for replicated).
  virtual void ReduceGradients() = 0;
  // This rank's term of the global ‖g‖² (every unique element counted once over the job).
  virtual double LocalSquaredNorm() const = 0;
  // g *= factor (clipping).
  virtual void ScaleGradients(double factor) = 0;
  // AdamW at learning rate `lr` on the masters, then the compute copy is refreshed.
  virtual void Step(double lr) = 0;

  virtual int64_t steps_taken() const = 0;
  // The whole replica's AdamW m and v, f32 laid out like the flat parameter buffers, into
  // tensors on any device. Collective over dp/edp for ZeRO-1, local otherwise.
  virtual void GatherState(Tensor flat_m, Tensor flat_v) = 0;
  // The inverse, local: a ZeRO-1 rank keeps its shards. Sets the step counter.
  virtual void LoadState(const Tensor& flat_m, const Tensor& flat_v, int64_t steps_taken) = 0;
  // The ZeRO-1 optimizer (its shards, for tests and checkpoint pieces); null when replicated.
  virtual parallel::DistributedOptimizer* zero1() { return nullptr; }
};

// `params` (allocated, initialised) and `groups` outlive the optimizer. `bucket_bytes`: the
// gradient bucket size of both implementations.
std::unique_ptr<DataParallelOptimizer> MakeDataParallelOptimizer(
    bool zero1, ParameterSet& params, std::vector<parallel::FlatSegment> segments,
    parallel::ProcessGroups& groups, int64_t bucket_bytes, const AdamWHyperParams& hp);

}  // namespace aoetron
