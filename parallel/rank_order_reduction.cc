#include "parallel/rank_order_reduction.h"

#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/check.h"

namespace aoetron::parallel {
namespace {

template <typename T>
T Combine(ReduceOp op, T accumulated, T next) {
  if (op == ReduceOp::kSum) {
    if constexpr (std::is_integral_v<T>) {
      using U = std::make_unsigned_t<T>;
      return static_cast<T>(static_cast<U>(accumulated) + static_cast<U>(next));
    } else {
      return accumulated + next;
    }
  }
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(accumulated)) return accumulated;
    if (std::isnan(next)) return next;
  }
  return next > accumulated ? next : accumulated;
}

template <typename T>
void Reduce(ReduceOp op, std::span<const void* const> contributions, void* out_raw, int64_t count) {
  T* out = static_cast<T*>(out_raw);
  const T* first = static_cast<const T*>(contributions[0]);
  if (out != first) std::memcpy(out, first, static_cast<size_t>(count) * sizeof(T));
  // One pass per contribution, in rank order: each element sees exactly the sequence of
  // operations the contract spells out, and the inner loop vectorises.
  for (size_t r = 1; r < contributions.size(); ++r) {
    const T* next = static_cast<const T*>(contributions[r]);
    if (op == ReduceOp::kSum) {
      for (int64_t i = 0; i < count; ++i) out[i] = Combine(ReduceOp::kSum, out[i], next[i]);
    } else {
      for (int64_t i = 0; i < count; ++i) out[i] = Combine(ReduceOp::kMax, out[i], next[i]);
    }
  }
}

// bf16: the contributions are widened to f32 and combined in f32 in rank order, then rounded
// once (mixed precision reduces in f32; a bf16 running sum would round at every rank).
void ReduceBf16(ReduceOp op, std::span<const void* const> contributions, void* out_raw,
                int64_t count) {
  std::vector<float> sum(static_cast<size_t>(count));
  for (size_t r = 0; r < contributions.size(); ++r) {
    const BFloat16* next = static_cast<const BFloat16*>(contributions[r]);
    for (int64_t i = 0; i < count; ++i) {
      const float value = ToFloat(next[i]);
      sum[i] = r == 0 ? value : Combine(op, sum[i], value);
    }
  }
  BFloat16* out = static_cast<BFloat16*>(out_raw);
  for (int64_t i = 0; i < count; ++i) out[i] = ToBFloat16(sum[i]);
}

}  // namespace

bool IsReducible(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF64 || dtype == DType::kBF16 ||
         dtype == DType::kI32 || dtype == DType::kI64;
}

void ReduceInRankOrder(ReduceOp op, DType dtype, std::span<const void* const> contributions,
                       void* out, int64_t count) {
  AOETRON_CHECK(!contributions.empty()) << "no contributions to reduce";
  if (count == 0) return;
  switch (dtype) {
    case DType::kF32:
      return Reduce<float>(op, contributions, out, count);
    case DType::kF64:
      return Reduce<double>(op, contributions, out, count);
    case DType::kBF16:
      return ReduceBf16(op, contributions, out, count);
    case DType::kI32:
      return Reduce<int32_t>(op, contributions, out, count);
    case DType::kI64:
      return Reduce<int64_t>(op, contributions, out, count);
    default:
      AOETRON_CHECK(false) << "reduction of " << DTypeName(dtype) << " is not supported";
  }
}

}  // namespace aoetron::parallel
