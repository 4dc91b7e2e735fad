#include "data/token_lookup.h"

namespace aoetron::data {

TokenLookup::TokenLookup(const std::vector<std::pair<std::string, int32_t>>& entries) {
  size_t capacity = 16;
  while (capacity < entries.size() * 2) capacity *= 2;  // load factor <= 1/2
  slots_.assign(capacity, Slot());
  mask_ = capacity - 1;
  for (const auto& [bytes, id] : entries) {
    if (bytes.size() > kInlineBytes) {
      long_keys_.emplace(bytes, id);
      continue;
    }
    Slot s;
    std::memcpy(&s.w0, bytes.data(), std::min<size_t>(bytes.size(), 8));
    if (bytes.size() > 8) std::memcpy(&s.w1, bytes.data() + 8, bytes.size() - 8);
    s.length = static_cast<uint32_t>(bytes.size());
    s.id = id;
    size_t slot = Hash(s.w0, s.w1, s.length) & mask_;
    while (slots_[slot].id >= 0) slot = (slot + 1) & mask_;
    slots_[slot] = s;
  }
}

}  // namespace aoetron::data
