// A fast, stable 64-bit hash for naming caches after the data they were built from. Not
// cryptographic; stable across runs, builds and machines (little-endian).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace aoetron::data {

// Continues the hash `seed` over `size` bytes.
uint64_t Fingerprint64(const void* data, size_t size, uint64_t seed = 0x9E3779B97F4A7C15ull);
inline uint64_t Fingerprint64(std::string_view s, uint64_t seed = 0x9E3779B97F4A7C15ull) {
  return Fingerprint64(s.data(), s.size(), seed);
}
// 16 lowercase hex digits.
std::string FingerprintHex(uint64_t fingerprint);

}  // namespace aoetron::data
