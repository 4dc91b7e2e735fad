#include "data/unicode_classes.h"

#include <algorithm>
#include <array>
#include <vector>

namespace aoetron::data {
namespace {

struct ClassRange {
  char32_t first;
  char32_t last;
  uint8_t char_class;
};

constexpr ClassRange kRanges[] = {
#include "data/unicode_classes_table.inc"
};

// The Basic Multilingual Plane as a flat table (64 KiB): almost all text stays in it.
struct BmpTable {
  std::array<uint8_t, 0x10000> classes{};
  BmpTable() {
    for (const ClassRange& r : kRanges) {
      for (char32_t cp = r.first; cp <= r.last && cp < 0x10000; ++cp) classes[cp] = r.char_class;
    }
  }
};
const BmpTable kBmp;

}  // namespace

const uint8_t kAsciiCharClass[128] = {
    // \t \n \v \f \r are whitespace, as are the space; digits are numbers; letters letters.
    0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 3, 3, 3, 0, 0,  // 0x00
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // 0x10
    3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // 0x20
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0,  // 0x30
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  // 0x40
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,  // 0x50
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  // 0x60
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,  // 0x70
};

CharClass ClassifyCodePoint(char32_t cp) {
  if (cp < 0x10000) return static_cast<CharClass>(kBmp.classes[cp]);
  auto it = std::upper_bound(std::begin(kRanges), std::end(kRanges), cp,
                             [](char32_t v, const ClassRange& r) { return v < r.first; });
  if (it == std::begin(kRanges)) return CharClass::kOther;
  --it;
  return cp <= it->last ? static_cast<CharClass>(it->char_class) : CharClass::kOther;
}

DecodedChar DecodeNonAsciiUtf8Char(const char* p, const char* end) {
  const auto* s = reinterpret_cast<const unsigned char*>(p);
  const size_t avail = static_cast<size_t>(end - p);
  const unsigned char b0 = s[0];
  constexpr DecodedChar kInvalid{0xFFFD, 1, CharClass::kOther};
  auto cont = [&](size_t i) { return i < avail && (s[i] & 0xC0) == 0x80; };
  char32_t cp;
  uint8_t len;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (!cont(1)) return kInvalid;
    cp = (char32_t(b0 & 0x1F) << 6) | (s[1] & 0x3F);
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (!cont(1) || !cont(2)) return kInvalid;
    cp = (char32_t(b0 & 0x0F) << 12) | (char32_t(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return kInvalid;  // overlong, surrogate
    len = 3;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return kInvalid;
    cp = (char32_t(b0 & 0x07) << 18) | (char32_t(s[1] & 0x3F) << 12) |
         (char32_t(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    if (cp < 0x10000 || cp > 0x10FFFF) return kInvalid;
    len = 4;
  } else {
    return kInvalid;
  }
  return {cp, len, ClassifyCodePoint(cp)};
}

int64_t FindInvalidUtf8(const char* data, size_t size) {
  const char* p = data;
  const char* end = data + size;
  while (p < end) {
    if (static_cast<unsigned char>(*p) < 0x80) {
      ++p;
      continue;
    }
    DecodedChar c = DecodeUtf8Char(p, end);
    if (c.code_point == 0xFFFD && c.length == 1) {
      // U+FFFD itself is 3 bytes long; a 1-byte U+FFFD is our marker for an invalid byte.
      return p - data;
    }
    p += c.length;
  }
  return -1;
}

}  // namespace aoetron::data
