#include "core/ops/elementwise.h"

#include <cmath>
#include <cstring>

#include "core/ops/cpu/kernels.h"
#include "core/ops/op_checks.h"

namespace aoetron::ops {
namespace {

using internal::CheckFloat;
using internal::CheckOperands;
using internal::DispatchFloat;

// f32 → bf16 keeping the upper 16 bits, rounded to nearest even (NaN stays a quiet NaN).
BFloat16 ToBFloat16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if (std::isnan(value)) return BFloat16{static_cast<uint16_t>((bits >> 16) | 0x40)};
  bits += 0x7FFF + ((bits >> 16) & 1);
  return BFloat16{static_cast<uint16_t>(bits >> 16)};
}

void CheckSameLayout(const char* op, const char* a_name, const Tensor& a, const char* b_name,
                     const Tensor& b) {
  AOETRON_CHECK(a.dtype() == b.dtype())
      << op << ": " << a_name << " and " << b_name << " differ in dtype: " << a.DebugString()
      << " vs " << b.DebugString();
  AOETRON_CHECK(a.numel() == b.numel())
      << op << ": " << a_name << " and " << b_name
      << " differ in element count: " << a.DebugString() << " vs " << b.DebugString();
}

}  // namespace

void Fill(Tensor& t, double value) {
  CheckOperands("Fill", {{"t", &t}});
  const int64_t n = t.numel();
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
  CheckOperands("Copy", {{"src", &src}, {"dst", &dst}});
  CheckSameLayout("Copy", "src", src, "dst", dst);
  if (src.raw_data() == dst.raw_data()) return;
  cpu::CopyBytes(src.raw_data(), dst.raw_data(), src.nbytes());
}

void AddInto(const Tensor& src, Tensor& dst) {
  CheckOperands("AddInto", {{"src", &src}, {"dst", &dst}});
  CheckFloat("AddInto", "dst", dst);
  CheckSameLayout("AddInto", "src", src, "dst", dst);
  DispatchFloat(dst.dtype(),
                [&]<typename T>() { cpu::AddInto<T>(src.data<T>(), dst.data<T>(), dst.numel()); });
}

void Axpy(double alpha, const Tensor& x, Tensor& y) {
  CheckOperands("Axpy", {{"x", &x}, {"y", &y}});
  CheckFloat("Axpy", "y", y);
  CheckSameLayout("Axpy", "x", x, "y", y);
  DispatchFloat(y.dtype(), [&]<typename T>() {
    cpu::Axpy<T>(static_cast<T>(alpha), x.data<T>(), y.data<T>(), y.numel());
  });
}

void Scale(Tensor& t, double alpha) {
  CheckOperands("Scale", {{"t", &t}});
  CheckFloat("Scale", "t", t);
  DispatchFloat(t.dtype(), [&]<typename T>() {
    cpu::Scale<T>(t.data<T>(), t.numel(), static_cast<T>(alpha));
  });
}

double SumSquares(const Tensor& t) {
  CheckOperands("SumSquares", {{"t", &t}});
  CheckFloat("SumSquares", "t", t);
  double result = 0.0;
  DispatchFloat(t.dtype(),
                [&]<typename T>() { result = cpu::SumSquares<T>(t.data<T>(), t.numel()); });
  return result;
}

}  // namespace aoetron::ops
