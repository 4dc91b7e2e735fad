#include "models/parameter.h"

#include <omp.h>

#include "core/ops/elementwise.h"
#include "core/ops/float_visit.h"
#include "core/rng.h"

namespace aoetron {

int ParameterSet::Add(Parameter parameter) {
  AOETRON_CHECK(!values_.defined()) << "ParameterSet::Add after Allocate: " << parameter.name;
  AOETRON_CHECK(Find(parameter.name) == nullptr) << "duplicate parameter " << parameter.name;
  if (parameter.local_shape.empty()) parameter.local_shape = parameter.global_shape;
  params_.push_back(std::move(parameter));
  return static_cast<int>(params_.size()) - 1;
}

void ParameterSet::Allocate(Device device) {
  AOETRON_CHECK(!values_.defined()) << "ParameterSet::Allocate called twice";
  int64_t total = 0;
  for (const Parameter& p : params_) total += NumElements(p.local_shape);
  values_ = Tensor::Empty({total}, dtype_, device);
  grads_ = Tensor::Empty({total}, dtype_, device);
  int64_t offset = 0;
  for (Parameter& p : params_) {
    const int64_t n = NumElements(p.local_shape);
    p.value = values_.Rows(offset, offset + n).Reshape(p.local_shape);
    p.grad = grads_.Rows(offset, offset + n).Reshape(p.local_shape);
    offset += n;
  }
}

void ParameterSet::Initialize(uint64_t seed) {
  AOETRON_CHECK(values_.device().is_cpu())
      << "Initialize runs on the host; copy to the device after";
  for (Parameter& p : params_) {
    AOETRON_CHECK(p.local_shape == p.global_shape)
        << p.name << ": sharded initialisation needs the global index map (parallel/)";
    if (p.init_std == 0.0) {
      ops::Fill(p.value, p.init_value);
      continue;
    }
    const uint64_t stream = StableHash(p.name);
    // The f32 draw is the reference: an f64 model starts from exactly the same values.
    const float std = static_cast<float>(p.init_std);
    const int64_t n = p.value.numel();
    VisitFloatData(p.value, [&](auto* data) {
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        data[i] = std * NormalAt(seed, stream, static_cast<uint64_t>(i));
      }
    });
  }
  ZeroGrads();
}

void ParameterSet::ZeroGrads() { ops::Fill(grads_, 0.0); }

Parameter* ParameterSet::Find(const std::string& name) {
  for (Parameter& p : params_) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

}  // namespace aoetron
