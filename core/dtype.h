// Element types a Tensor can hold.
//
// f32 is the compute type of the CPU backend. bf16 is the storage type of the CUDA backend's
// mixed precision. i32/i64/u16 hold token ids, indices and counts. f64 exists for the reference
// paths of the tests (finite differences in double), never for training.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace aoetron {

enum class DType : uint8_t { kF32, kF64, kBF16, kI32, kI64, kU16 };

// Size in bytes of one element.
constexpr size_t SizeOf(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 4;
    case DType::kF64:
      return 8;
    case DType::kBF16:
      return 2;
    case DType::kI32:
      return 4;
    case DType::kI64:
      return 8;
    case DType::kU16:
      return 2;
  }
  return 0;
}

constexpr std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "f32";
    case DType::kF64:
      return "f64";
    case DType::kBF16:
      return "bf16";
    case DType::kI32:
      return "i32";
    case DType::kI64:
      return "i64";
    case DType::kU16:
      return "u16";
  }
  return "?";
}

// bf16 storage: the upper 16 bits of an IEEE f32. Conversion rounds to nearest even.
struct BFloat16 {
  uint16_t bits = 0;
};

// f32 → bf16, rounded to nearest even; a NaN stays a (quiet) NaN.
inline BFloat16 ToBFloat16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u)
    return BFloat16{static_cast<uint16_t>((bits >> 16) | 0x40)};
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return BFloat16{static_cast<uint16_t>(bits >> 16)};
}

// bf16 → f32, exact.
inline float ToFloat(BFloat16 value) {
  const uint32_t bits = static_cast<uint32_t>(value.bits) << 16;
  float result;
  std::memcpy(&result, &bits, sizeof(result));
  return result;
}

// The dtype that reductions, saved statistics (RMSNorm's rstd, attention's log-sum-exp, losses,
// routing scores and norms), parameter gradients and master weights use for activations of
// `compute` dtype: f32 for bf16 (mixed precision: bf16's unit roundoff of 2⁻⁸ would swamp a
// sum), else the dtype itself.
constexpr DType AccumulationDType(DType compute) {
  return compute == DType::kBF16 ? DType::kF32 : compute;
}

// Maps a C++ element type to its DType, so Tensor::data<T>() can check what it is asked for.
template <typename T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
  static constexpr DType value = DType::kF32;
};
template <>
struct DTypeOf<double> {
  static constexpr DType value = DType::kF64;
};
template <>
struct DTypeOf<BFloat16> {
  static constexpr DType value = DType::kBF16;
};
template <>
struct DTypeOf<int32_t> {
  static constexpr DType value = DType::kI32;
};
template <>
struct DTypeOf<int64_t> {
  static constexpr DType value = DType::kI64;
};
template <>
struct DTypeOf<uint16_t> {
  static constexpr DType value = DType::kU16;
};

}  // namespace aoetron
