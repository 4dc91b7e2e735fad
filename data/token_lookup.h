// TokenLookup: bytes -> token id for the encoder's hottest lookup (is this piece a token?).
//
// An open-addressing hash table specialised for short keys: a key of up to 16 bytes is stored
// inline as two 64-bit words plus its length, so a lookup is one multiply-hash and, typically,
// one cache line — several times faster than a general string map. Longer keys (rare: GPT-2 has
// few tokens over 16 bytes) go to an absl::flat_hash_map.
//
// Thread safety: immutable after construction; concurrent Find calls are safe.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "data/string_view_compat.h"

namespace aoetron::data {

class TokenLookup {
 public:
  TokenLookup() = default;
  // `entries`: (bytes, id) pairs with distinct bytes.
  explicit TokenLookup(const std::vector<std::pair<std::string, int32_t>>& entries);

  // The id of `bytes`, or -1.
  int32_t Find(std::string_view bytes) const {
    if (bytes.size() > kInlineBytes) {
      auto it = long_keys_.find(ToAbsl(bytes));
      return it == long_keys_.end() ? -1 : it->second;
    }
    uint64_t w[2] = {0, 0};
    std::memcpy(w, bytes.data(), bytes.size());
    const uint32_t length = static_cast<uint32_t>(bytes.size());
    for (size_t slot = Hash(w[0], w[1], length) & mask_;; slot = (slot + 1) & mask_) {
      const Slot& s = slots_[slot];
      if (s.id < 0) return -1;
      if (s.w0 == w[0] && s.w1 == w[1] && s.length == length) return s.id;
    }
  }

 private:
  static constexpr size_t kInlineBytes = 16;
  struct Slot {
    uint64_t w0 = 0, w1 = 0;
    uint32_t length = 0;
    int32_t id = -1;  // -1: empty
  };
  static uint64_t Hash(uint64_t w0, uint64_t w1, uint32_t length) {
    uint64_t h = (w0 ^ (static_cast<uint64_t>(length) << 59)) * 0x9E3779B97F4A7C15ull;
    h ^= w1 * 0xC2B2AE3D27D4EB4Full;
    return h ^ (h >> 29);
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  absl::flat_hash_map<std::string, int32_t> long_keys_;
};

}  // namespace aoetron::data
