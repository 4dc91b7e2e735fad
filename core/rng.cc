#include "core/rng.h"

#include <cmath>

namespace aoetron {

std::array<uint32_t, 4> Philox4x32(uint64_t key, uint64_t counter_high, uint64_t counter_low) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  uint32_t c0 = static_cast<uint32_t>(counter_low), c1 = static_cast<uint32_t>(counter_low >> 32);
  uint32_t c2 = static_cast<uint32_t>(counter_high), c3 = static_cast<uint32_t>(counter_high >> 32);
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = uint64_t{kMul0} * c0, p1 = uint64_t{kMul1} * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c0 = n0;
    c1 = static_cast<uint32_t>(p1);
    c2 = n2;
    c3 = static_cast<uint32_t>(p0);
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return {c0, c1, c2, c3};
}

namespace {
float ToUnitOpen(uint32_t word) {
  return (static_cast<float>(word >> 8) + 0.5f) * (1.0f / 16777216.0f);
}
}  // namespace

float UniformAt(uint64_t seed, uint64_t stream, uint64_t index) {
  return ToUnitOpen(Philox4x32(seed, stream, index)[0]);
}

float NormalAt(uint64_t seed, uint64_t stream, uint64_t index) {
  const auto words = Philox4x32(seed, stream, index);
  const double u1 = ToUnitOpen(words[0]), u2 = ToUnitOpen(words[1]);
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
}

uint64_t UniformIntAt(uint64_t seed, uint64_t stream, uint64_t index, uint64_t bound) {
  const auto w = Philox4x32(seed, stream, index);
  const uint64_t bits = (uint64_t{w[0]} << 32) | w[1];
  // 64 random bits reduced by multiply-shift: bias below 2^-32 for any bound < 2^32.
  return static_cast<uint64_t>((static_cast<unsigned __int128>(bits) * bound) >> 64);
}

uint64_t StableHash(std::string_view text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace aoetron
