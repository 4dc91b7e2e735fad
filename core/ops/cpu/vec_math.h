// Inline math for the CPU kernels, written so that GCC and Clang vectorise the loops that call it.
//
// glibc's expf is a scalar call the compiler cannot vectorise without -ffast-math, and the hot
// loops here (cross-entropy over a 50k vocabulary, attention softmax, SiLU) each evaluate
// millions of exponentials per step. Exp<float> is a branch-free Cephes-style exp: range
// reduction plus a degree-6 polynomial, about 1 ulp, all plain arithmetic and selects.
// Exp<double> is std::exp: f64 exists for the finite-difference reference paths of the tests,
// where exactness matters and speed does not.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace aoetron::ops::cpu {

// exp(x) for float, vectorisable.
//   exp(x) = 2^n · exp(r),  n = round(x · log2 e),  r = x − n · ln 2 ∈ [−ln2/2, ln2/2]
// ln 2 is split into a short high part (exact product with n) and a low correction (Cody–Waite),
// so r keeps full precision. 2^n is built from exponent bits in two halves, so n = 128 (x just
// below the overflow threshold) still gives two normal factors. Inputs below −87.34 return 0
// (results there would be subnormal); inputs above 88.72 return +inf; NaN propagates.
inline float ExpF32(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kMaxArg = 88.7228390f;
  constexpr float kMinArg = -87.3365448f;
  constexpr float kRoundMagic = 12582912.0f;  // 1.5 · 2^23: adding it rounds to an integer
  float xc = x < kMinArg ? kMinArg : x;
  xc = xc > kMaxArg ? kMaxArg : xc;
  const float shifted = xc * kLog2e + kRoundMagic;
  const float n = shifted - kRoundMagic;
  const int32_t ni = std::bit_cast<int32_t>(shifted) - std::bit_cast<int32_t>(kRoundMagic);
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t half = ni >> 1;
  const float scale_a = std::bit_cast<float>((half + 127) << 23);
  const float scale_b = std::bit_cast<float>((ni - half + 127) << 23);
  float y = p * scale_a * scale_b;
  y = x > kMaxArg ? std::numeric_limits<float>::infinity() : y;
  y = x < kMinArg ? 0.0f : y;
  return x != x ? x : y;
}

template <typename T>
inline T Exp(T x) {
  if constexpr (std::is_same_v<T, float>) {
    return ExpF32(x);
  } else {
    return std::exp(x);
  }
}

// σ(z) = 1 / (1 + e^−z); e^−z = +inf for very negative z gives exactly 0, as it should.
template <typename T>
inline T Sigmoid(T z) {
  return T(1) / (T(1) + Exp<T>(-z));
}

}  // namespace aoetron::ops::cpu
