// GPT-2's reversible byte <-> printable-character mapping.
//
// encoder.json and vocab.bpe store tokens as text, not bytes: each byte b is written as the
// character ByteToCodePoint(b). Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') map to
// themselves; the other 68 bytes (controls, space, DEL, NBSP, soft hyphen) map to U+0100 onward
// in byte order. So the space byte 0x20 appears as 'Ġ' (U+0120), newline as 'Ċ' (U+010A).
//
// GPT-2's first 256 token ids are these 256 characters in the order of the printable bytes
// first, then the others: ByteAtRank(i) gives the byte of token id i for a GPT-2-layout vocabulary.
//
// Thread safety: pure functions over constant tables.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace aoetron::data {

char32_t ByteToCodePoint(uint8_t byte);
// The byte for a mapped character, or nullopt when `cp` is not one of the 256 characters.
std::optional<uint8_t> CodePointToByte(char32_t cp);
// The byte GPT-2 gives token id `rank` (0..255).
uint8_t ByteAtRank(int rank);

// Raw bytes -> mapped UTF-8 text, as stored in encoder.json and vocab.bpe.
std::string BytesToMappedText(std::string_view bytes);
// Mapped UTF-8 text -> raw bytes; nullopt when the text holds a character outside the mapping
// or is not valid UTF-8.
std::optional<std::string> MappedTextToBytes(std::string_view text);

// Appends the UTF-8 encoding of `cp` to `out`.
void AppendUtf8(char32_t cp, std::string* out);

}  // namespace aoetron::data
