// Element types a Tensor can hold.
//
// f32 is the compute type of the CPU backend. bf16 is the storage type of the CUDA backend's
// mixed precision. i32/i64/u16 hold token ids, indices and counts. f64 exists for the reference
// paths of the tests (finite differences in double), never for training.
#pragma once

#include <cstddef>
#include <cstdint>
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
