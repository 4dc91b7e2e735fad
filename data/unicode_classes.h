// Code-point classes and UTF-8 decoding for GPT-2's pre-tokenisation.
//
// GPT-2 splits text with the regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// which needs to know, for each code point, whether it is a letter, a number, whitespace or other.
// The table comes from node's regex engine (data/tools/gen_unicode_classes.js), so that we agree
// with the JavaScript reference tokenizer on every code point.
//
// Bytes that do not start a valid UTF-8 sequence (stray continuation bytes, overlong forms,
// surrogates, truncated sequences) decode as a one-byte unit of class kOther, which is how the
// reference treats the U+FFFD it would put in their place. The split therefore is defined on any
// byte string, and encoding stays lossless for invalid UTF-8.
//
// Thread safety: all functions are pure; the tables are built once, before main().
#pragma once

#include <cstddef>
#include <cstdint>

namespace aoetron::data {

enum class CharClass : uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kSpace = 3 };

// Class of a Unicode scalar value (code points above U+10FFFF are kOther).
CharClass ClassifyCodePoint(char32_t cp);

struct DecodedChar {
  char32_t code_point;  // U+FFFD for an invalid byte
  uint8_t length;       // bytes consumed: 1..4, always >= 1
  CharClass char_class;
};

// Classes of the ASCII characters (the common case, inlined).
extern const uint8_t kAsciiCharClass[128];

// The non-ASCII part of DecodeUtf8Char.
DecodedChar DecodeNonAsciiUtf8Char(const char* p, const char* end);

// Decodes the character starting at `p` (p < end). Never reads at or past `end`.
inline DecodedChar DecodeUtf8Char(const char* p, const char* end) {
  const unsigned char b0 = static_cast<unsigned char>(*p);
  if (b0 < 0x80) return {b0, 1, static_cast<CharClass>(kAsciiCharClass[b0])};
  return DecodeNonAsciiUtf8Char(p, end);
}

// Returns the byte offset of the first invalid UTF-8 sequence in [data, data+size), or -1 when
// the whole range is valid UTF-8.
int64_t FindInvalidUtf8(const char* data, size_t size);

}  // namespace aoetron::data
