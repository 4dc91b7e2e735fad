// Tensor: a shape, an element type, a device, and contiguous row-major storage.
//
// A Tensor is a cheap handle. Copying it copies the handle, not the data: both handles see the
// same elements. Storage is either owned (Empty/Zeros: freed when the last handle goes) or
// borrowed (Wrap: memory owned elsewhere — an activation arena, a flat parameter buffer — that
// must outlive every handle). Views (Reshape, Rows) share their parent's storage and lifetime.
//
// There are no strides: every tensor is contiguous, so a view is only ever a reshape or a
// contiguous range of rows. Kernels can therefore treat any tensor as a flat array.
// Thread safety: handles may be used from several threads; writes to the elements need the
// caller's synchronisation, as for any array.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <source_location>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/device.h"
#include "core/device_access.h"
#include "core/dtype.h"

namespace aoetron {

using Shape = std::vector<int64_t>;

int64_t NumElements(const Shape& shape);
std::string ShapeToString(const Shape& shape);

class Tensor {
 public:
  // An undefined tensor: no storage, shape {}. defined() is false.
  Tensor() = default;

  // Owned, uninitialised storage.
  static Tensor Empty(Shape shape, DType dtype, Device device = Device::Cpu());
  // Owned storage filled with zeros (CPU only; device tensors are zeroed by ops::Fill).
  static Tensor Zeros(Shape shape, DType dtype);
  // Borrowed storage: `data` must hold NumElements(shape) elements and outlive every handle.
  static Tensor Wrap(void* data, Shape shape, DType dtype, Device device = Device::Cpu());

  bool defined() const { return defined_; }
  const Shape& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  // Size of dimension i; negative i counts from the end (dim(-1) is the last).
  int64_t dim(int i) const;
  int64_t numel() const { return NumElements(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * SizeOf(dtype_); }
  DType dtype() const { return dtype_; }
  const Device& device() const { return device_; }

  // Typed access to the elements; CHECKs that T matches dtype(). On a strict_cpu tensor only
  // code inside a DeviceAccessScope may call these (core/device_access.h); any other caller fails
  // with its file and line.
  template <typename T>
  T* data(std::source_location caller = std::source_location::current()) {
    CheckHostAccess(caller);
    AOETRON_CHECK(DTypeOf<T>::value == dtype_)
        << "tensor holds " << DTypeName(dtype_) << ", asked for " << DTypeName(DTypeOf<T>::value);
    return static_cast<T*>(data_);
  }
  template <typename T>
  const T* data(std::source_location caller = std::source_location::current()) const {
    return const_cast<Tensor*>(this)->data<T>(caller);
  }
  void* raw_data(std::source_location caller = std::source_location::current()) {
    CheckHostAccess(caller);
    return data_;
  }
  const void* raw_data(std::source_location caller = std::source_location::current()) const {
    CheckHostAccess(caller);
    return data_;
  }
  // True when `other` is a handle to the same elements with the same shape and dtype (an alias);
  // compares addresses only, so it is no access to the data.
  bool IsSameView(const Tensor& other) const {
    return data_ == other.data_ && shape_ == other.shape_ && dtype_ == other.dtype_ &&
           device_ == other.device_;
  }
  // The same storage seen as another element type (dtype sizes must divide the row bytes): a
  // view, no element is read. For moving raw bytes (i32 metadata inside a float payload).
  Tensor ViewAs(DType dtype, Shape shape) const;

  // The same elements seen with another shape of equal element count.
  Tensor Reshape(Shape shape) const;
  // Rows [begin, end) along dimension 0, sharing storage.
  Tensor Rows(int64_t begin, int64_t end) const;
  // Treats the tensor as a matrix: all leading dimensions folded into rows, the last kept.
  Tensor AsMatrix() const { return Reshape({numel() / dim(-1), dim(-1)}); }

  std::string DebugString() const;  // "f32[8, 256] on cpu"

 private:
  void CheckHostAccess(const std::source_location& caller) const {
    if (device_.kind == DeviceKind::kStrictCpu && !DeviceAccessScope::active()) {
      FailHostAccess(caller);
    }
  }
  [[noreturn]] void FailHostAccess(const std::source_location& caller) const;

  std::shared_ptr<void> storage_;  // null when borrowed
  void* data_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::kF32;
  bool defined_ = false;
  Device device_;
};

// CHECKs that `t` has exactly `shape`, naming `what` in the message.
void CheckShape(const Tensor& t, const Shape& shape, const char* what);

}  // namespace aoetron
