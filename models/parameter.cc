#include "models/parameter.h"

#include <omp.h>

#include "core/device_transfer.h"
#include "core/ops/elementwise.h"
#include "core/ops/float_visit.h"
#include "core/rng.h"

namespace aoetron {

ParameterSet::ParameterSet(DType dtype, int tp_rank, int tp_size)
    : dtype_(dtype), tp_rank_(tp_rank), tp_size_(tp_size) {
  AOETRON_CHECK(tp_size >= 1 && tp_rank >= 0 && tp_rank < tp_size)
      << "tensor-parallel rank " << tp_rank << " of " << tp_size;
}

int ParameterSet::Add(Parameter parameter) {
  AOETRON_CHECK(!values_.defined()) << "ParameterSet::Add after Allocate: " << parameter.name;
  AOETRON_CHECK(Find(parameter.name) == nullptr) << "duplicate parameter " << parameter.name;
  parameter.local_shape = parameter.global_shape;
  parameter.local_offset.assign(parameter.global_shape.size(), 0);
  const int dim = parameter.sharding.tensor_parallel_dim;
  if (dim >= 0) {
    AOETRON_CHECK(dim < static_cast<int>(parameter.global_shape.size()))
        << parameter.name << ": tensor-parallel dim " << dim << " outside its shape";
    const int64_t extent = parameter.global_shape[dim];
    AOETRON_CHECK(extent % tp_size_ == 0)
        << parameter.name << ": dim " << dim << " (" << extent
        << ") is not divisible by the tensor-parallel size " << tp_size_;
    parameter.local_shape[dim] = extent / tp_size_;
    parameter.local_offset[dim] = tp_rank_ * (extent / tp_size_);
  }
  params_.push_back(std::move(parameter));
  return static_cast<int>(params_.size()) - 1;
}

void ParameterSet::Allocate(Device device) {
  AOETRON_CHECK(!values_.defined()) << "ParameterSet::Allocate called twice";
  int64_t total = 0;
  for (const Parameter& p : params_) total += NumElements(p.local_shape);
  masters_ = Tensor::Empty({total}, master_dtype(), device);
  values_ = has_compute_copy() ? Tensor::Empty({total}, dtype_, device) : masters_;
  grads_ = Tensor::Empty({total}, master_dtype(), device);
  int64_t offset = 0;
  for (Parameter& p : params_) {
    const int64_t n = NumElements(p.local_shape);
    p.flat_offset = offset;
    p.value = values_.Rows(offset, offset + n).Reshape(p.local_shape);
    p.master = masters_.Rows(offset, offset + n).Reshape(p.local_shape);
    p.grad = grads_.Rows(offset, offset + n).Reshape(p.local_shape);
    offset += n;
  }
}

void ParameterSet::Initialize(uint64_t seed) {
  for (Parameter& p : params_) {
    if (p.init_std == 0.0) {
      ops::Fill(p.master, p.init_value);
      continue;
    }
    // The draws are made on the host (once per run); a device copy follows for other devices.
    Tensor host =
        masters_.device().is_cpu() ? p.master : Tensor::Empty(p.local_shape, master_dtype());
    const uint64_t stream = StableHash(p.name);
    // The f32 draw is the reference: an f64 model starts from exactly the same values.
    const float std = static_cast<float>(p.init_std);
    const int64_t n = p.master.numel();
    // Local element i sits at multi-index local(i) + local_offset of the global tensor; its
    // global row-major index picks the draw.
    const int rank = static_cast<int>(p.global_shape.size());
    auto global_index = [&](int64_t i) {
      int64_t global = 0, stride = 1;
      for (int k = rank - 1; k >= 0; --k) {
        const int64_t local_k = i % p.local_shape[k];
        i /= p.local_shape[k];
        global += (local_k + p.local_offset[k]) * stride;
        stride *= p.global_shape[k];
      }
      return static_cast<uint64_t>(global);
    };
    const bool whole = p.local_shape == p.global_shape;
    DispatchFloat(host.dtype(), [&]<typename T>() {
      T* data = host.data<T>();
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        const uint64_t index = whole ? static_cast<uint64_t>(i) : global_index(i);
        data[i] = std * NormalAt(seed, stream, index);
      }
    });
    if (!masters_.device().is_cpu()) CopyAcrossDevices(host, p.master);
  }
  RefreshComputeCopy();
  ZeroGrads();
}

void ParameterSet::RefreshComputeCopy() {
  if (has_compute_copy()) ops::Convert(masters_, values_);
}

void ParameterSet::ZeroGrads() { ops::Fill(grads_, 0.0); }

Parameter* ParameterSet::Find(const std::string& name) {
  for (Parameter& p : params_) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

}  // namespace aoetron
