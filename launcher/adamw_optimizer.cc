#include "launcher/adamw_optimizer.h"

#include "core/check.h"
#include "core/ops/elementwise.h"

namespace aoetron {

AdamWOptimizer::AdamWOptimizer(ParameterSet* params, const AdamWHyperParams& hp)
    : params_(params), hp_(hp) {
  AOETRON_CHECK(params != nullptr) << "AdamWOptimizer: null parameter set";
  AOETRON_CHECK(params->flat_values().defined())
      << "AdamWOptimizer: the parameter set must be allocated first";
  AOETRON_CHECK(params->master_dtype() == DType::kF32)
      << "AdamWOptimizer: master weights must be f32, got " << DTypeName(params->master_dtype());
  // Zero moments: with the bias correction, the first update is then lr·g/(|g|+ε) per element.
  for (Tensor* moment : {&m_, &v_}) {
    *moment = Tensor::Empty({params->num_elements()}, DType::kF32, params->flat_values().device());
    ops::Fill(*moment, 0.0);
  }
}

void AdamWOptimizer::Step(double lr) {
  ++steps_taken_;
  for (Parameter& p : params_->all()) {
    // The moments of a parameter sit at the same offset as its value in the flat buffer.
    const int64_t offset = p.flat_offset;
    const int64_t n = p.value.numel();
    Tensor m = m_.Rows(offset, offset + n).Reshape(p.value.shape());
    Tensor v = v_.Rows(offset, offset + n).Reshape(p.value.shape());
    const float decay = p.weight_decay ? hp_.weight_decay : 0.0f;
    AdamWUpdate(p.master, p.grad, m, v, static_cast<float>(lr), decay, hp_, steps_taken_);
  }
}

}  // namespace aoetron
