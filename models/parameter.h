// Parameters: named, shaped, with sharding metadata, stored in one flat buffer.
//
// Every parameter has a stable name ("layers.3.ffn.experts.5.w_up"), its global shape, and how
// it is split across ranks. Checkpoints, export, gradient sync and the optimizer are driven by
// this metadata alone. Values and gradients of all parameters live in contiguous flat buffers
// (one allocation each), so an all-reduce or a ZeRO shard is a range of one buffer, and a
// parameter is a view into it.
//
// Precision. The set's dtype is the compute dtype the layers read (f32 for training, f64 for the
// finite-difference tests, bf16 for mixed precision). Master weights and gradients are in
// AccumulationDType(dtype): f32 beside bf16, else the dtype itself. In mixed precision the
// layers read a bf16 compute copy of the f32 masters (`value`), accumulate f32 gradients
// (`grad`), and the optimizer updates the masters and refreshes the copy (RefreshComputeCopy);
// checkpoints hold the masters. Otherwise the masters ARE the values (one buffer).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace aoetron {

// How a parameter's global tensor is distributed over ranks. The two splits compose: an expert
// weight lives only on the expert-parallel rank that owns its expert and may in addition be
// split over the tensor-parallel group (expert tensor parallelism).
//   tensor_parallel_dim = d ≥ 0: the tp group splits dim d into tp equal contiguous blocks;
//                                 tp rank i holds block i. -1: every tp rank holds all of it.
//   expert = e ≥ 0:               the weight belongs to expert e and is registered only on the
//                                 ep rank owning e (replicated over the expert-data-parallel
//                                 group). -1: not an expert weight (replicated over dp).
// Gradient sync, grad-norm accounting, ZeRO-1, checkpoints and export read nothing else.
struct Sharding {
  int tensor_parallel_dim = -1;
  int expert = -1;

  static Sharding Replicated() { return {}; }
  static Sharding TensorSplit(int dim) { return {dim, -1}; }
  static Sharding Expert(int expert, int tensor_parallel_dim = -1) {
    return {tensor_parallel_dim, expert};
  }
  bool is_expert() const { return expert >= 0; }
  bool is_tensor_split() const { return tensor_parallel_dim >= 0; }
};

struct Parameter {
  std::string name;
  Shape global_shape;  // the unsharded shape
  Sharding sharding;
  // Filled by ParameterSet::Add from global_shape, sharding and the set's tp position: the box
  // of the global tensor this rank holds, global[local_offset + i] for i < local_shape.
  Shape local_shape;
  Shape local_offset;
  bool weight_decay = true;  // false for norm weights
  // false: state its layer updates itself (the routed FFN's expert bias), never given a gradient.
  // Its gradient stays zero and it has no weight decay, so AdamW moves it by exactly 0
  // (m = v = 0 → m̂/(√v̂ + ε) = 0); it is saved, resharded and exported like any weight.
  bool trainable = true;
  double init_std = 0.0;  // N(0, init_std²); 0 means "constant init_value"
  double init_value = 0.0;
  Tensor value;             // view into the compute buffer: what the layers read
  Tensor master;            // view into the master buffer (the same view as value unless bf16)
  Tensor grad;              // view into the gradient buffer (the masters' dtype)
  int64_t flat_offset = 0;  // first element of value, master and grad in the flat buffers
};

class ParameterSet {
 public:
  // `dtype` is the compute dtype: of the values the layers read and of the activations computed
  // from them: f32 for training, bf16 for mixed precision, f64 for the finite-difference tests.
  // `tp_rank` of `tp_size` places this rank in the tensor-parallel group: Add() cuts every
  // tensor-split parameter to this rank's block.
  explicit ParameterSet(DType dtype = DType::kF32, int tp_rank = 0, int tp_size = 1);
  DType dtype() const { return dtype_; }
  // Of the masters, the gradients and the optimizer state: f32 beside bf16, else dtype().
  DType master_dtype() const { return AccumulationDType(dtype_); }
  bool has_compute_copy() const { return dtype_ != master_dtype(); }
  int tp_rank() const { return tp_rank_; }
  int tp_size() const { return tp_size_; }

  // Registers a parameter (name, global_shape, sharding, init); computes local_shape and
  // local_offset. Checks (programming errors): a unique name, a split dim inside the shape
  // and divisible by tp_size. Returns its index. Only before Allocate().
  int Add(Parameter parameter);
  // Creates the flat master, gradient and (bf16) compute buffers and points every parameter at
  // its slices.
  void Allocate(Device device = Device::Cpu());

  // Fills every master from its init_std/init_value with NormalAt(seed, StableHash(name),
  // global element index): each rank draws exactly its box of the global tensor, so the model is
  // the same whatever the layout. Then refreshes the compute copy.
  void Initialize(uint64_t seed);
  void ZeroGrads();

  int size() const { return static_cast<int>(params_.size()); }
  Parameter& operator[](int i) { return params_[i]; }
  const Parameter& operator[](int i) const { return params_[i]; }
  std::vector<Parameter>& all() { return params_; }
  const std::vector<Parameter>& all() const { return params_; }
  // Null if no parameter has that name.
  Parameter* Find(const std::string& name);

  // The compute values (bf16 in mixed precision; the masters themselves otherwise).
  Tensor& flat_values() { return values_; }
  // What the optimizer updates and checkpoints save: f32 (f64 in the tests).
  Tensor& flat_masters() { return masters_; }
  Tensor& flat_grads() { return grads_; }
  // values = masters rounded to the compute dtype (bf16: to nearest even); nothing when they are
  // one buffer. After every change of the masters: an optimizer step, a checkpoint load.
  void RefreshComputeCopy();
  int64_t num_elements() const { return values_.numel(); }

 private:
  DType dtype_;
  int tp_rank_, tp_size_;
  std::vector<Parameter> params_;
  Tensor masters_;
  Tensor values_;
  Tensor grads_;
};

}  // namespace aoetron
