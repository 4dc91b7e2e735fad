#include "launcher/adamw_optimizer.h"

#include "core/check.h"

namespace aoetron {

AdamWOptimizer::AdamWOptimizer(ParameterSet* params, const AdamWHyperParams& hp)
    : params_(params), hp_(hp) {
  AOETRON_CHECK(params != nullptr) << "AdamWOptimizer: null parameter set";
  AOETRON_CHECK(params->flat_values().defined())
      << "AdamWOptimizer: the parameter set must be allocated first";
  AOETRON_CHECK(params->dtype() == DType::kF32)
      << "AdamWOptimizer: parameters must be f32, got " << DTypeName(params->dtype());
  // Zero moments: with the bias correction, the first update is then lr·g/(|g|+ε) per element.
  m_ = Tensor::Zeros({params->num_elements()}, DType::kF32);
  v_ = Tensor::Zeros({params->num_elements()}, DType::kF32);
}

void AdamWOptimizer::Step(double lr) {
  ++steps_taken_;
  const char* values_begin = static_cast<const char*>(params_->flat_values().raw_data());
  for (Parameter& p : params_->all()) {
    // The moments of a parameter sit at the same offset as its value in the flat buffer.
    const int64_t offset =
        (static_cast<const char*>(p.value.raw_data()) - values_begin) / sizeof(float);
    const int64_t n = p.value.numel();
    Tensor m = m_.Rows(offset, offset + n).Reshape(p.value.shape());
    Tensor v = v_.Rows(offset, offset + n).Reshape(p.value.shape());
    const float decay = p.weight_decay ? hp_.weight_decay : 0.0f;
    AdamWUpdate(p.value, p.grad, m, v, static_cast<float>(lr), decay, hp_, steps_taken_);
  }
}

}  // namespace aoetron
