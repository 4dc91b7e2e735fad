// FeedForward: the block after the second RMSNorm of every layer — dense SwiGLU, router MoE or
// AoE. Forward and backward are an explicit pair over one micro-batch: Forward keeps what
// Backward needs (arena-backed, valid until the arena is reset), Backward consumes it.
#pragma once

#include <memory>

#include "core/arena.h"
#include "core/tensor.h"
#include "models/expert_stats.h"
#include "models/model_config.h"
#include "models/parameter.h"
#include "parallel/process_groups.h"

namespace aoetron {

class FeedForward {
 public:
  virtual ~FeedForward() = default;

  // x: [N, d] (already normalised), y: [N, d] overwritten.
  virtual void Forward(const Tensor& x, Tensor& y, ActivationArena& arena) = 0;

  // dy: [N, d], the gradient of (loss_scale · total loss) w.r.t. y. Accumulates into dx [N, d]
  // and the parameters' gradients. loss_scale also scales this block's own aux-loss gradient.
  virtual void Backward(const Tensor& dy, double loss_scale, Tensor& dx,
                        ActivationArena& arena) = 0;

  // This block's load-balancing loss from the last Forward (0 for dense).
  virtual double aux_loss() const { return 0.0; }
  // Expert-load diagnostics from the last Forward; null for dense.
  virtual const ExpertLoadStats* stats() const { return nullptr; }
  // Once per optimizer step, after the parameters' update: moves the aux-loss-free balancing
  // bias by the load of the step's micro-batches (models/routed_ffn.h). Nothing elsewhere.
  virtual void UpdateExpertBias() {}
};

// Registers the parameters of layer `layer`'s FFN in `params` and returns the block.
// `groups` places the block's rank (tensor- and expert-parallel shards); it must outlive it.
std::unique_ptr<FeedForward> MakeFeedForward(const ModelConfig& config, int layer,
                                             ParameterSet* params, parallel::ProcessGroups& groups);

}  // namespace aoetron
