#include "data/gpt2_pretokenizer.h"

#include "data/unicode_classes.h"

namespace aoetron::data {
namespace {

// End of the run of characters of class `cls` that starts at `pos`.
size_t RunEnd(std::string_view text, size_t pos, CharClass cls) {
  const char* base = text.data();
  const char* end = base + text.size();
  const uint8_t ascii_class = static_cast<uint8_t>(cls);
  while (pos < text.size()) {
    const unsigned char b = static_cast<unsigned char>(base[pos]);
    if (b < 0x80) {  // fast path: most text is ASCII
      if (kAsciiCharClass[b] != ascii_class) break;
      ++pos;
      continue;
    }
    DecodedChar c = DecodeUtf8Char(base + pos, end);
    if (c.char_class != cls) break;
    pos += c.length;
  }
  return pos;
}

// Length of a lowercase contraction suffix ('s 't 're 've 'm 'll 'd) at `pos`, or 0.
size_t ContractionLength(std::string_view text, size_t pos) {
  const size_t left = text.size() - pos;
  if (left < 2) return 0;
  const char a = text[pos + 1];
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (left < 3) return 0;
  const char b = text[pos + 2];
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

}  // namespace

size_t Gpt2PieceEnd(std::string_view text, size_t begin) {
  const char* base = text.data();
  const char* end = base + text.size();
  if (text[begin] == '\'') {
    if (size_t n = ContractionLength(text, begin)) return begin + n;
  }
  DecodedChar first = DecodeUtf8Char(base + begin, end);
  size_t pos = begin + first.length;
  if (first.char_class != CharClass::kSpace) return RunEnd(text, pos, first.char_class);

  // A single space joins the letter/number/other run that follows it.
  if (first.code_point == ' ' && pos < text.size()) {
    DecodedChar next = DecodeUtf8Char(base + pos, end);
    if (next.char_class != CharClass::kSpace) {
      return RunEnd(text, pos + next.length, next.char_class);
    }
  }
  // Whitespace run: \s+(?!\S) keeps the last whitespace character for the next piece when
  // non-space text follows; \s+ takes a single whitespace character when nothing else matches.
  size_t last_start = begin;
  while (pos < text.size()) {
    DecodedChar c = DecodeUtf8Char(base + pos, end);
    if (c.char_class != CharClass::kSpace) {
      return last_start > begin ? last_start : pos;
    }
    last_start = pos;
    pos += c.length;
  }
  return pos;  // whitespace up to the end of the text
}

std::vector<std::string_view> SplitGpt2Pieces(std::string_view text) {
  std::vector<std::string_view> pieces;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = Gpt2PieceEnd(text, pos);
    pieces.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return pieces;
}

}  // namespace aoetron::data
