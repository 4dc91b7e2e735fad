#include "core/ops/elementwise.h"

#include <cmath>
#include <cstring>

#include "core/ops/cpu/kernels.h"
#include "core/ops/cuda/kernels.h"
#ifdef AOETRON_WITH_CUDA
#include "core/cuda/device_context.h"
#endif
#include "core/ops/f32_staging.h"
#include "core/ops/op_checks.h"

namespace aoetron::ops {
namespace {

using internal::CheckFloat;
using internal::CheckOperands;
using internal::CudaOrdinal;
using internal::DispatchFloat;
using internal::F32Staging;
using internal::OnCuda;

void CheckSameLayout(const char* op, const char* a_name, const Tensor& a, const char* b_name,
                     const Tensor& b) {
  AOETRON_CHECK(a.dtype() == b.dtype())
      << op << ": " << a_name << " and " << b_name << " differ in dtype: " << a.DebugString()
      << " vs " << b.DebugString();
  AOETRON_CHECK(a.numel() == b.numel())
      << op << ": " << a_name << " and " << b_name
      << " differ in element count: " << a.DebugString() << " vs " << b.DebugString();
}

#ifdef AOETRON_WITH_CUDA
// The bytes of `value` as one element of `dtype` (converted as the CPU Fill converts it).
uint64_t ElementBits(DType dtype, double value) {
  uint64_t bits = 0;
  auto store = [&bits](auto element) { std::memcpy(&bits, &element, sizeof(element)); };
  switch (dtype) {
    case DType::kF32:
      store(static_cast<float>(value));
      break;
    case DType::kF64:
      store(value);
      break;
    case DType::kBF16:
      store(ToBFloat16(static_cast<float>(value)).bits);
      break;
    case DType::kI32:
      store(static_cast<int32_t>(value));
      break;
    case DType::kI64:
      store(static_cast<int64_t>(value));
      break;
    case DType::kU16:
      store(static_cast<uint16_t>(value));
      break;
  }
  return bits;
}
#endif

}  // namespace

void Fill(Tensor& t, double value) {
  const DeviceAccessScope kernel_access;
  CheckOperands("Fill", {{"t", &t}});
  const int64_t n = t.numel();
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(t)) {
    cuda::Fill(CudaOrdinal(t), t.raw_data(), n, SizeOf(t.dtype()), ElementBits(t.dtype(), value));
    return;
  }
#endif
  switch (t.dtype()) {
    case DType::kF32:
      cpu::Fill<float>(t.data<float>(), n, static_cast<float>(value));
      return;
    case DType::kF64:
      cpu::Fill<double>(t.data<double>(), n, value);
      return;
    case DType::kBF16:
      cpu::Fill<BFloat16>(t.data<BFloat16>(), n, ToBFloat16(static_cast<float>(value)));
      return;
    case DType::kI32:
      cpu::Fill<int32_t>(t.data<int32_t>(), n, static_cast<int32_t>(value));
      return;
    case DType::kI64:
      cpu::Fill<int64_t>(t.data<int64_t>(), n, static_cast<int64_t>(value));
      return;
    case DType::kU16:
      cpu::Fill<uint16_t>(t.data<uint16_t>(), n, static_cast<uint16_t>(value));
      return;
  }
  AOETRON_CHECK(false) << "Fill: unknown dtype";
}

void Copy(const Tensor& src, Tensor& dst) {
  const DeviceAccessScope kernel_access;
  CheckOperands("Copy", {{"src", &src}, {"dst", &dst}});
  CheckSameLayout("Copy", "src", src, "dst", dst);
  if (src.raw_data() == dst.raw_data()) return;
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(dst)) {
    aoetron::cuda::CopyDeviceToDevice(CudaOrdinal(dst), src.raw_data(), dst.raw_data(),
                                      src.nbytes());
    return;
  }
#endif
  cpu::CopyBytes(src.raw_data(), dst.raw_data(), src.nbytes());
}

void Convert(const Tensor& src, Tensor& dst) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "Convert";
  CheckOperands(kOp, {{"src", &src}, {"dst", &dst}});
  CheckFloat(kOp, "src", src);
  CheckFloat(kOp, "dst", dst);
  AOETRON_CHECK(src.numel() == dst.numel())
      << kOp << ": src and dst differ in element count: " << src.DebugString() << " vs "
      << dst.DebugString();
  if (src.dtype() == dst.dtype()) {
    Copy(src, dst);
    return;
  }
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(dst)) {
    cuda::Convert(CudaOrdinal(dst), src.dtype(), src.raw_data(), dst.dtype(), dst.raw_data(),
                  dst.numel());
    return;
  }
#endif
  const int64_t n = dst.numel();
  auto convert_to = [&]<typename D>(D* out) {
    switch (src.dtype()) {
      case DType::kF32:
        cpu::Convert(src.data<float>(), n, out);
        return;
      case DType::kF64:
        cpu::Convert(src.data<double>(), n, out);
        return;
      case DType::kBF16:
        cpu::Convert(src.data<BFloat16>(), n, out);
        return;
      default:
        AOETRON_CHECK(false) << kOp << ": src " << src.DebugString();
    }
  };
  switch (dst.dtype()) {
    case DType::kF32:
      convert_to(dst.data<float>());
      return;
    case DType::kF64:
      convert_to(dst.data<double>());
      return;
    case DType::kBF16:
      convert_to(dst.data<BFloat16>());
      return;
    default:
      AOETRON_CHECK(false) << kOp << ": dst " << dst.DebugString();
  }
}

void AddInto(const Tensor& src, Tensor& dst) {
  const DeviceAccessScope kernel_access;
  CheckOperands("AddInto", {{"src", &src}, {"dst", &dst}});
  CheckFloat("AddInto", "dst", dst);
  CheckSameLayout("AddInto", "src", src, "dst", dst);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(dst)) {
    cuda::AddInto(CudaOrdinal(dst), dst.dtype(), src.raw_data(), dst.raw_data(), dst.numel());
    return;
  }
#endif
  if (dst.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    AddInto(f32.In(src), f32.InOut(dst));
    return;
  }
  DispatchFloat(dst.dtype(),
                [&]<typename T>() { cpu::AddInto<T>(src.data<T>(), dst.data<T>(), dst.numel()); });
}

void Axpy(double alpha, const Tensor& x, Tensor& y) {
  const DeviceAccessScope kernel_access;
  CheckOperands("Axpy", {{"x", &x}, {"y", &y}});
  CheckFloat("Axpy", "y", y);
  CheckSameLayout("Axpy", "x", x, "y", y);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(y)) {
    cuda::Axpy(CudaOrdinal(y), y.dtype(), static_cast<float>(alpha), x.raw_data(), y.raw_data(),
               y.numel());
    return;
  }
#endif
  if (y.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    Axpy(alpha, f32.In(x), f32.InOut(y));
    return;
  }
  DispatchFloat(y.dtype(), [&]<typename T>() {
    cpu::Axpy<T>(static_cast<T>(alpha), x.data<T>(), y.data<T>(), y.numel());
  });
}

void Scale(Tensor& t, double alpha) {
  const DeviceAccessScope kernel_access;
  CheckOperands("Scale", {{"t", &t}});
  CheckFloat("Scale", "t", t);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(t)) {
    cuda::Scale(CudaOrdinal(t), t.dtype(), t.raw_data(), t.numel(), static_cast<float>(alpha));
    return;
  }
#endif
  if (t.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    Scale(f32.InOut(t), alpha);
    return;
  }
  DispatchFloat(t.dtype(), [&]<typename T>() {
    cpu::Scale<T>(t.data<T>(), t.numel(), static_cast<T>(alpha));
  });
}

double SumSquares(const Tensor& t) {
  const DeviceAccessScope kernel_access;
  CheckOperands("SumSquares", {{"t", &t}});
  CheckFloat("SumSquares", "t", t);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(t)) return cuda::SumSquares(CudaOrdinal(t), t.dtype(), t.raw_data(), t.numel());
#endif
  if (t.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    return SumSquares(f32.In(t));
  }
  double result = 0.0;
  DispatchFloat(t.dtype(),
                [&]<typename T>() { result = cpu::SumSquares<T>(t.data<T>(), t.numel()); });
  return result;
}

}  // namespace aoetron::ops
