#include "core/tensor.h"

#include <cstring>
#include <sstream>

#include "core/allocator.h"

namespace aoetron {

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeToString(const Shape& shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

Tensor Tensor::Empty(Shape shape, DType dtype, Device device) {
  for (int64_t d : shape) AOETRON_CHECK(d >= 0) << "negative dimension in " << ShapeToString(shape);
  Tensor t;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.defined_ = true;
  t.device_ = device;
  Allocator* allocator = &AllocatorFor(device.kind);
  void* ptr = allocator->Allocate(t.nbytes(), device.index);
  t.storage_ = std::shared_ptr<void>(ptr, [allocator](void* p) { allocator->Free(p); });
  t.data_ = ptr;
  return t;
}

Tensor Tensor::Zeros(Shape shape, DType dtype) {
  Tensor t = Empty(std::move(shape), dtype, Device::Cpu());
  std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::Wrap(void* data, Shape shape, DType dtype, Device device) {
  Tensor t;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.defined_ = true;
  t.device_ = device;
  t.data_ = data;
  return t;
}

int64_t Tensor::dim(int i) const {
  const int r = rank();
  if (i < 0) i += r;
  AOETRON_CHECK(i >= 0 && i < r) << "dim " << i << " of tensor " << DebugString();
  return shape_[i];
}

Tensor Tensor::Reshape(Shape shape) const {
  AOETRON_CHECK_EQ(NumElements(shape), numel())
      << "reshape " << DebugString() << " to " << ShapeToString(shape);
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::Rows(int64_t begin, int64_t end) const {
  AOETRON_CHECK(rank() >= 1 && 0 <= begin && begin <= end && end <= shape_[0])
      << "rows [" << begin << ", " << end << ") of " << DebugString();
  Tensor t = *this;
  const int64_t row_elements = shape_[0] == 0 ? 0 : numel() / shape_[0];
  t.data_ = static_cast<char*>(data_) + begin * row_elements * SizeOf(dtype_);
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::ViewAs(DType dtype, Shape shape) const {
  AOETRON_CHECK_EQ(static_cast<size_t>(NumElements(shape)) * SizeOf(dtype), nbytes())
      << "view of " << DebugString() << " as " << DTypeName(dtype) << ShapeToString(shape);
  Tensor t = *this;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  return t;
}

void Tensor::FailHostAccess(const std::source_location& caller) const {
  AOETRON_CHECK(false) << "host access to the elements of " << DebugString() << " from "
                       << caller.file_name() << ":" << caller.line() << " ("
                       << caller.function_name()
                       << "): on this device only core/ops kernels, device copies and "
                          "communicator backends may touch tensor data";
  std::abort();
}

std::string Tensor::DebugString() const {
  return std::string(DTypeName(dtype_)) + ShapeToString(shape_) + " on " + device_.ToString();
}

void CheckShape(const Tensor& t, const Shape& shape, const char* what) {
  AOETRON_CHECK(t.shape() == shape)
      << what << ": expected shape " << ShapeToString(shape) << ", got " << t.DebugString();
}

}  // namespace aoetron
