// Parameters: named, shaped, with sharding metadata, stored in one flat buffer.
//
// Every parameter has a stable name ("layers.3.ffn.experts.5.w_up"), its global shape, and how
// it is split across ranks. Checkpoints, export, gradient sync and the optimizer are driven by
// this metadata alone. Values and gradients of all parameters live in two contiguous f32 buffers
// (one allocation each), so an all-reduce or a ZeRO shard is a range of one buffer, and a
// parameter is a view into it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace aoetron {

// How a parameter's global tensor is distributed over ranks.
struct Sharding {
  enum class Kind {
    kReplicated,   // every rank holds all of it (norms, router, AoE's W_down)
    kTensorSplit,  // split along `dim` over the tensor-parallel group
    kExpert,       // owned by the expert-parallel rank that owns expert `expert`
  };
  Kind kind = Kind::kReplicated;
  int dim = -1;     // kTensorSplit only
  int expert = -1;  // kExpert only
};

struct Parameter {
  std::string name;
  Shape global_shape;  // the unsharded shape
  Shape local_shape;   // what this rank holds
  Sharding sharding;
  bool weight_decay = true;  // false for norm weights
  double init_std = 0.0;     // N(0, init_std²); 0 means "constant init_value"
  double init_value = 0.0;
  Tensor value;  // view into ParameterSet's value buffer
  Tensor grad;   // view into ParameterSet's gradient buffer
};

// All parameters of a model, in registration order (which is the order of the flat buffers).
// Usage: Add() every parameter, then Allocate() once; views are valid for the set's lifetime.
// Not thread-safe.
class ParameterSet {
 public:
  // `dtype` is the floating-point type of values, gradients and the activations computed from
  // them: f32 for training, f64 for the finite-difference tests.
  explicit ParameterSet(DType dtype = DType::kF32) : dtype_(dtype) {}
  DType dtype() const { return dtype_; }

  // Registers a parameter; returns its index. Only before Allocate().
  int Add(Parameter parameter);
  // Creates the flat value and gradient buffers and points every parameter at its slice.
  void Allocate(Device device = Device::Cpu());

  // Fills every value from its init_std/init_value with NormalAt(seed, StableHash(name),
  // global element index): the result is the same whatever the layout.
  void Initialize(uint64_t seed);
  void ZeroGrads();

  int size() const { return static_cast<int>(params_.size()); }
  Parameter& operator[](int i) { return params_[i]; }
  const Parameter& operator[](int i) const { return params_[i]; }
  std::vector<Parameter>& all() { return params_; }
  const std::vector<Parameter>& all() const { return params_; }
  // Null if no parameter has that name.
  Parameter* Find(const std::string& name);

  Tensor& flat_values() { return values_; }
  Tensor& flat_grads() { return grads_; }
  int64_t num_elements() const { return values_.numel(); }

 private:
  DType dtype_;
  std::vector<Parameter> params_;
  Tensor values_;
  Tensor grads_;
};

}  // namespace aoetron
