// GPT-2's pre-tokenisation: the split of text into pieces before byte-pair merging.
//
// The pieces are exactly the matches of GPT-2's regex (the one in tiktoken's r50k_base and in
// gpt-tokenizer), evaluated by hand instead of by a regex engine:
//
//   's|'t|'re|'ve|'m|'ll|'d      English contractions, lowercase only
//   | ?\p{L}+ | ?\p{N}+           a run of letters / numbers, with at most one leading space
//   | ?[^\s\p{L}\p{N}]+          a run of other characters, with at most one leading space
//   |\s+(?!\S)                   whitespace not followed by a non-space: a run of whitespace
//                                less its last character when more text follows (that last
//                                character, if a space, then leads the next word)
//   |\s+                         otherwise a single whitespace character before text
//
// The pieces cover the input without gaps or overlaps; every piece is non-empty.
// Invalid UTF-8 bytes count as "other" characters (see unicode_classes.h).
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace aoetron::data {

// Returns the end offset of the piece that starts at `begin` (begin < text.size()).
size_t Gpt2PieceEnd(std::string_view text, size_t begin);

// All pieces of `text`, in order.
std::vector<std::string_view> SplitGpt2Pieces(std::string_view text);

}  // namespace aoetron::data
