#include "data/byte_unicode.h"

#include <array>

#include "data/unicode_classes.h"

namespace aoetron::data {
namespace {

bool IsPrintableLatin1(int b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct Tables {
  std::array<char32_t, 256> byte_to_cp{};
  std::array<uint8_t, 256> rank_to_byte{};
  std::array<int16_t, 0x144> cp_to_byte{};  // all mapped characters are below U+0144
  Tables() {
    cp_to_byte.fill(-1);
    int rank = 0;
    for (int b = 0; b < 256; ++b) {
      if (IsPrintableLatin1(b)) {
        byte_to_cp[b] = b;
        rank_to_byte[rank++] = static_cast<uint8_t>(b);
      }
    }
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      if (!IsPrintableLatin1(b)) {
        byte_to_cp[b] = 0x100 + extra++;
        rank_to_byte[rank++] = static_cast<uint8_t>(b);
      }
    }
    for (int b = 0; b < 256; ++b) cp_to_byte[byte_to_cp[b]] = static_cast<int16_t>(b);
  }
};
const Tables kTables;

}  // namespace

char32_t ByteToCodePoint(uint8_t byte) { return kTables.byte_to_cp[byte]; }

std::optional<uint8_t> CodePointToByte(char32_t cp) {
  if (cp >= kTables.cp_to_byte.size() || kTables.cp_to_byte[cp] < 0) return std::nullopt;
  return static_cast<uint8_t>(kTables.cp_to_byte[cp]);
}

uint8_t ByteAtRank(int rank) { return kTables.rank_to_byte[rank & 0xFF]; }

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string BytesToMappedText(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) AppendUtf8(ByteToCodePoint(static_cast<uint8_t>(c)), &out);
  return out;
}

std::optional<std::string> MappedTextToBytes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    DecodedChar c = DecodeUtf8Char(p, end);
    if (c.code_point == 0xFFFD && c.length == 1) return std::nullopt;
    std::optional<uint8_t> b = CodePointToByte(c.code_point);
    if (!b) return std::nullopt;
    out.push_back(static_cast<char>(*b));
    p += c.length;
  }
  return out;
}

}  // namespace aoetron::data
