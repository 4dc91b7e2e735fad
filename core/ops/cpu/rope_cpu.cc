// Rotary position embeddings, rotate-half pairing, in place on the q and k parts of packed qkv.
//
// For pair i in [0, hd/2) at position p, θ_i = theta^(−2i/hd), φ = p·θ_i, (a, b) = (v[i],
// v[i+hd/2]):
//   forward:  v'[i] = a cos φ − b sin φ,   v'[i + hd/2] = a sin φ + b cos φ
//   backward: the rotation matrix is orthogonal, so the gradient goes through its transpose,
//             which is the rotation by −φ: same code with sin φ negated.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/ops/cpu/kernels.h"

namespace aoetron::ops::cpu {
namespace {

constexpr int64_t kParallelMinElements = int64_t{1} << 15;

// cos φ and sin φ for every (position, pair): [seq, hd/2] each. Angles are formed in double, so
// the f32 tables are correctly rounded even at long positions. The table of the last shape seen
// is kept per thread: a training step calls RoPE with the same (seq, hd, theta) in every layer,
// and recomputing seq·hd/2 sines and cosines each time would cost as much as the rotation.
template <typename T>
struct RotationTable {
  int64_t seq = -1, half = -1;
  double theta = 0.0;
  std::vector<T> cos, sin;
};

template <typename T>
// Covers positions [0, seq) at least. An entry depends on (p, i, theta) alone, so a longer table
// serves shorter sequences with the same bits; it grows by doubling (KV-cache decoding asks for
// one more position per token).
const RotationTable<T>& TableFor(int64_t seq, int64_t half, double theta) {
  thread_local RotationTable<T> table;
  if (table.seq >= seq && table.half == half && table.theta == theta) return table;
  if (table.half == half && table.theta == theta) seq = std::max(seq, 2 * table.seq);
  table.seq = seq;
  table.half = half;
  table.theta = theta;
  table.cos.resize(seq * half);
  table.sin.resize(seq * half);
  for (int64_t i = 0; i < half; ++i) {
    const double inv_freq = std::pow(theta, -2.0 * static_cast<double>(i) / (2.0 * half));
    for (int64_t p = 0; p < seq; ++p) {
      const double angle = static_cast<double>(p) * inv_freq;
      table.cos[p * half + i] = static_cast<T>(std::cos(angle));
      table.sin[p * half + i] = static_cast<T>(std::sin(angle));
    }
  }
  return table;
}

}  // namespace

template <typename T>
void Rope(T* qkv, int64_t batch, int64_t seq, int64_t heads, int64_t head_dim, double theta,
          bool inverse, int64_t first_position) {
  const int64_t half = head_dim / 2;
  const RotationTable<T>& table = TableFor<T>(first_position + seq, half, theta);
  const T sign = inverse ? T(-1) : T(1);
  const int64_t token_stride = 3 * heads * head_dim;
  const int64_t tokens = batch * seq;
#pragma omp parallel for schedule(static) if (tokens * token_stride >= kParallelMinElements)
  for (int64_t token = 0; token < tokens; ++token) {
    const int64_t p = first_position + token % seq;
    const T* cos = table.cos.data() + p * half;
    const T* sin = table.sin.data() + p * half;
    // q and k are the first 2·heads vectors of the token; v (the rest) is left alone.
    for (int64_t vec = 0; vec < 2 * heads; ++vec) {
      T* lo = qkv + token * token_stride + vec * head_dim;
      T* hi = lo + half;
#pragma omp simd
      for (int64_t i = 0; i < half; ++i) {
        const T a = lo[i], b = hi[i], c = cos[i], s = sign * sin[i];
        lo[i] = a * c - b * s;
        hi[i] = a * s + b * c;
      }
    }
  }
}

template void Rope<float>(float*, int64_t, int64_t, int64_t, int64_t, double, bool, int64_t);
template void Rope<double>(double*, int64_t, int64_t, int64_t, int64_t, double, bool, int64_t);

}  // namespace aoetron::ops::cpu
