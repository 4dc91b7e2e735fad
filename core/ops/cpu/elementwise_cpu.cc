// Whole-tensor elementwise kernels: fill, copy, add, axpy, scale, sum of squares.
//
// These run over flat arrays (tensors are contiguous), split into static OpenMP ranges. Small
// tensors (biases, norms' weights) stay on the calling thread: starting a parallel region costs
// more than the work.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "core/ops/cpu/kernels.h"

namespace aoetron::ops::cpu {
namespace {

// Below this many elements a loop runs on one thread.
constexpr int64_t kParallelMinElements = int64_t{1} << 15;
// SumSquares reduces over chunks of this many elements; the chunk partials are added in chunk
// order, so the result does not depend on how many threads computed them.
constexpr int64_t kSumChunk = int64_t{1} << 14;

}  // namespace

template <typename T>
void Fill(T* x, int64_t n, T value) {
#pragma omp parallel for schedule(static) if (n >= kParallelMinElements)
  for (int64_t i = 0; i < n; ++i) x[i] = value;
}

void CopyBytes(const void* src, void* dst, size_t nbytes) {
  // Chunks of 1 MiB: large copies (flat parameter buffers) use both cores' bandwidth.
  constexpr size_t kChunk = size_t{1} << 20;
  const int64_t chunks = static_cast<int64_t>((nbytes + kChunk - 1) / kChunk);
  const char* s = static_cast<const char*>(src);
  char* d = static_cast<char*>(dst);
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const size_t begin = static_cast<size_t>(c) * kChunk;
    const size_t len = std::min(kChunk, nbytes - begin);
    std::memcpy(d + begin, s + begin, len);
  }
}

namespace {
float Widen(float x) { return x; }
double Widen(double x) { return x; }
float Widen(BFloat16 x) { return ToFloat(x); }
template <typename D>
D Narrow(double x) {
  return static_cast<D>(x);
}
template <>
BFloat16 Narrow<BFloat16>(double x) {
  return ToBFloat16(static_cast<float>(x));
}
}  // namespace

template <typename S, typename D>
void Convert(const S* src, int64_t n, D* dst) {
#pragma omp parallel for schedule(static) if (n >= kParallelMinElements)
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (std::is_same_v<D, BFloat16> && std::is_same_v<S, float>) {
      dst[i] = ToBFloat16(src[i]);  // one rounding, not through double
    } else {
      dst[i] = Narrow<D>(Widen(src[i]));
    }
  }
}

#define AOETRON_CONVERT(S, D) template void Convert<S, D>(const S*, int64_t, D*);
AOETRON_CONVERT(float, float)
AOETRON_CONVERT(float, double)
AOETRON_CONVERT(float, BFloat16)
AOETRON_CONVERT(double, double)
AOETRON_CONVERT(double, float)
AOETRON_CONVERT(double, BFloat16)
AOETRON_CONVERT(BFloat16, BFloat16)
AOETRON_CONVERT(BFloat16, float)
AOETRON_CONVERT(BFloat16, double)
#undef AOETRON_CONVERT

// dst += src
template <typename T>
void AddInto(const T* src, T* dst, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMinElements)
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

// y += alpha · x
template <typename T>
void Axpy(T alpha, const T* x, T* y, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMinElements)
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

// x *= alpha
template <typename T>
void Scale(T* x, int64_t n, T alpha) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMinElements)
  for (int64_t i = 0; i < n; ++i) x[i] *= alpha;
}

// Σ x², in double: partial[c] = Σ_{i in chunk c} x[i]², total = Σ_c partial[c] in order of c.
// Inside a chunk, element i goes to lane (i − begin) mod kSumLanes and the lanes are added in
// order at the end: the summation order is fixed by the indices alone, so the bits do not depend
// on the pointer's alignment (a compiler's own simd reduction may peel for alignment and so
// assign elements to lanes differently for the same values at another address). The gradient
// norm relies on this: ZeRO-1 sums the same gradient pieces from another buffer.
template <typename T>
double SumSquares(const T* x, int64_t n) {
  constexpr int64_t kSumLanes = 16;
  const int64_t chunks = (n + kSumChunk - 1) / kSumChunk;
  std::vector<double> partial(chunks);
#pragma omp parallel for schedule(static) if (n >= kParallelMinElements)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * kSumChunk;
    const int64_t end = std::min(n, begin + kSumChunk);
    double lanes[kSumLanes] = {};
    const int64_t full = begin + (end - begin) / kSumLanes * kSumLanes;
    for (int64_t i = begin; i < full; i += kSumLanes) {
      for (int64_t l = 0; l < kSumLanes; ++l) {
        const double v = static_cast<double>(x[i + l]);
        lanes[l] += v * v;
      }
    }
    for (int64_t i = full; i < end; ++i) {
      const double v = static_cast<double>(x[i]);
      lanes[i - full] += v * v;
    }
    double sum = 0.0;
    for (int64_t l = 0; l < kSumLanes; ++l) sum += lanes[l];
    partial[c] = sum;
  }
  double total = 0.0;
  for (int64_t c = 0; c < chunks; ++c) total += partial[c];
  return total;
}

template void Fill<float>(float*, int64_t, float);
template void Fill<double>(double*, int64_t, double);
template void Fill<BFloat16>(BFloat16*, int64_t, BFloat16);
template void Fill<int32_t>(int32_t*, int64_t, int32_t);
template void Fill<int64_t>(int64_t*, int64_t, int64_t);
template void Fill<uint16_t>(uint16_t*, int64_t, uint16_t);
template void AddInto<float>(const float*, float*, int64_t);
template void AddInto<double>(const double*, double*, int64_t);
template void Axpy<float>(float, const float*, float*, int64_t);
template void Axpy<double>(double, const double*, double*, int64_t);
template void Scale<float>(float*, int64_t, float);
template void Scale<double>(double*, int64_t, double);
template double SumSquares<float>(const float*, int64_t);
template double SumSquares<double>(const double*, int64_t);

}  // namespace aoetron::ops::cpu
