#include "data/fingerprint.h"

#include <cstring>

#include "absl/strings/str_format.h"

namespace aoetron::data {
namespace {

inline uint64_t Mix(uint64_t h, uint64_t v) {
  h ^= v * 0xFF51AFD7ED558CCDull;
  h = (h << 27) | (h >> 37);
  return h * 0xC4CEB9FE1A85EC53ull + 0x52DCE729;
}

}  // namespace

uint64_t Fingerprint64(const void* data, size_t size, uint64_t seed) {
  const char* p = static_cast<const char*>(data);
  uint64_t h = Mix(seed, size);
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    h = Mix(h, v);
  }
  uint64_t tail = 0;
  std::memcpy(&tail, p + i, size - i);
  h = Mix(h, tail);
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  return h;
}

std::string FingerprintHex(uint64_t fingerprint) { return absl::StrFormat("%016x", fingerprint); }

}  // namespace aoetron::data
