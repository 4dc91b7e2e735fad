// AdamWOptimizer: AdamW over every parameter of a ParameterSet, with fp32 moments.
//
// Moments m and v are two flat buffers laid out like the parameter set's value buffer, so a
// checkpoint or a ZeRO shard is a range of them. Norm weights (Parameter::weight_decay false)
// take no decay. The step counter is 1-based inside AdamWUpdate and counts optimizer steps
// (not micro-batches). Not thread-safe.
#pragma once

#include <cstdint>

#include "core/optim/adamw.h"
#include "core/tensor.h"
#include "models/parameter.h"

namespace aoetron {

class AdamWOptimizer {
 public:
  // `params` must be allocated and outlive the optimizer.
  AdamWOptimizer(ParameterSet* params, const AdamWHyperParams& hp);

  // One update of every parameter from its current gradient at learning rate `lr`.
  void Step(double lr);

  int64_t steps_taken() const { return steps_taken_; }
  // For resuming from a checkpoint: the next Step() is step steps_taken + 1.
  void set_steps_taken(int64_t steps_taken) { steps_taken_ = steps_taken; }
  Tensor& flat_m() { return m_; }
  Tensor& flat_v() { return v_; }
  const AdamWHyperParams& hyper_params() const { return hp_; }

 private:
  ParameterSet* params_;
  AdamWHyperParams hp_;
  Tensor m_, v_;
  int64_t steps_taken_ = 0;
};

}  // namespace aoetron
