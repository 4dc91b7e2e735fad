#include "data/gpt2_pretokenizer.h"

#include <gtest/gtest.h>

#include "data/unicode_classes.h"

namespace aoetron::data {
namespace {

std::vector<std::string> Split(std::string_view text) {
  std::vector<std::string> out;
  for (std::string_view piece : SplitGpt2Pieces(text)) out.emplace_back(piece);
  return out;
}

using Pieces = std::vector<std::string>;

TEST(Gpt2Pretokenizer, WordsTakeOneLeadingSpace) {
  EXPECT_EQ(Split("Hello world"), (Pieces{"Hello", " world"}));
  EXPECT_EQ(Split("a  b"), (Pieces{"a", " ", " b"}));
  EXPECT_EQ(Split("a   b"), (Pieces{"a", "  ", " b"}));
}

TEST(Gpt2Pretokenizer, Contractions) {
  EXPECT_EQ(Split("I'm don't we'll they're I've he'd it's"),
            (Pieces{"I", "'m", " don", "'t", " we", "'ll", " they", "'re", " I", "'ve", " he", "'d",
                    " it", "'s"}));
  EXPECT_EQ(Split("IT'S"), (Pieces{"IT", "'", "S"}));  // uppercase is not a contraction
  EXPECT_EQ(Split("''s"), (Pieces{"''", "s"}));
}

TEST(Gpt2Pretokenizer, NumbersAndSymbols) {
  EXPECT_EQ(Split("abc123 456!!? x"), (Pieces{"abc", "123", " 456", "!!?", " x"}));
}

TEST(Gpt2Pretokenizer, WhitespaceBeforeTextLeavesItsLastCharacter) {
  EXPECT_EQ(Split("a\n\nb"), (Pieces{"a", "\n", "\n", "b"}));
  EXPECT_EQ(Split("a \n b"), (Pieces{"a", " \n", " b"}));
  EXPECT_EQ(Split("a\t\t"), (Pieces{"a", "\t\t"}));  // trailing whitespace stays whole
  EXPECT_EQ(Split("   "), (Pieces{"   "}));
}

TEST(Gpt2Pretokenizer, UnicodeClasses) {
  EXPECT_EQ(ClassifyCodePoint(U'é'), CharClass::kLetter);
  EXPECT_EQ(ClassifyCodePoint(U'中'), CharClass::kLetter);
  EXPECT_EQ(ClassifyCodePoint(U'٣'), CharClass::kNumber);  // Arabic-Indic digit
  EXPECT_EQ(ClassifyCodePoint(U'\u3000'), CharClass::kSpace);
  EXPECT_EQ(ClassifyCodePoint(U'\uFEFF'), CharClass::kSpace);  // JavaScript's \s includes BOM
  EXPECT_EQ(ClassifyCodePoint(U'🌍'), CharClass::kOther);
  EXPECT_EQ(ClassifyCodePoint(U'\U00020000'), CharClass::kLetter);  // CJK extension B
  EXPECT_EQ(Split("naïve café"), (Pieces{"naïve", " café"}));
}

TEST(Gpt2Pretokenizer, AsciiFastPathAgreesWithTheGeneratedTable) {
  for (int c = 0; c < 128; ++c) {
    EXPECT_EQ(static_cast<CharClass>(kAsciiCharClass[c]), ClassifyCodePoint(c)) << c;
    const char byte = static_cast<char>(c);
    EXPECT_EQ(DecodeUtf8Char(&byte, &byte + 1).char_class, ClassifyCodePoint(c));
  }
}

TEST(Gpt2Pretokenizer, InvalidUtf8BytesAreOtherCharacters) {
  // 0xff and a lone continuation byte join the run of symbols; the pieces still cover the text.
  std::string text = "ab\xff\x80!cd \xc3";
  std::string joined;
  for (const std::string& p : Split(text)) joined += p;
  EXPECT_EQ(joined, text);
  EXPECT_EQ(Split(text), (Pieces{"ab", "\xff\x80!", "cd", " \xc3"}));
  EXPECT_EQ(FindInvalidUtf8(text.data(), text.size()), 2);
  EXPECT_EQ(FindInvalidUtf8("ok é", 5), -1);
  EXPECT_EQ(FindInvalidUtf8("\xed\xa0\x80", 3), 0);  // surrogate
  EXPECT_EQ(FindInvalidUtf8("\xc0\xaf", 2), 0);      // overlong
}

}  // namespace
}  // namespace aoetron::data
