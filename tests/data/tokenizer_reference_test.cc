// Our tokenizer against the reference, gpt-tokenizer's r50k_base under node: identical ids on
// random texts built to hit every branch of the pre-tokeniser (all Unicode planes, unusual
// whitespace, combining marks, contractions, long runs) and on real texts (this repository's
// sources and docs, and the prepared corpora when present).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <random>

#include "data/bpe_tokenizer.h"
#include "data/byte_unicode.h"
#include "data/json_string.h"
#include "data/tokenizer_files.h"
#include "data/unicode_classes.h"
#include "tests/data/test_paths.h"

namespace aoetron::data {
namespace {

std::string RandomText(std::mt19937_64& rng) {
  static const std::vector<std::string> kFragments = {
      "the",     " the",    "Hello",  " world",
      "'s",      "'ll",     "'RE",    "'ve",
      "'",       "''",      " '",     "don't",
      "123",     " 4567",   "3.14",   "1,000",
      "!",       "?!",      "...",    " --",
      "(",       ")",       "\"",     "#",
      "@",       "_",       " ",      "  ",
      "   ",     "\n",      "\n\n",   "\r\n",
      "\t",      " \t ",    "\u00a0", "\u2028",
      "\u3000",  "\ufeff",  "\u0085", "\u180e",
      "\u200b",  "\u000b",  "\u000c", "\u001c",
      "é",       " café",   "naïve",  "Ünïcödé",
      "中文",    " 日本語", "한국어", "Привет",
      " мир",    "مرحبا",   "١٢٣",    "हिन्दी",
      "e\u0301", "\u0301",  "🌍",      "👨‍👩‍👧",
      "🇪🇸",      " 🙂",   "𝔘𝔫𝔦",    "𐍈",
      "Ⅻ",       "½",       "²",      "<|endoftext|>",
      "<|",      "|>",      "\\",     "/",
      "~",       "ﬁ",       "ǅ",      "ß",
      "İ"};
  std::string text;
  const int parts = 1 + static_cast<int>(rng() % 40);
  for (int i = 0; i < parts; ++i) {
    const uint64_t r = rng() % 10;
    if (r < 7) {
      text += kFragments[rng() % kFragments.size()];
    } else if (r < 9) {
      // Any Unicode scalar value, weighted towards the BMP.
      char32_t cp = rng() % 2 ? static_cast<char32_t>(rng() % 0x10000)
                              : static_cast<char32_t>(rng() % 0x110000);
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
      AppendUtf8(cp, &text);
    } else {
      text += std::string(1 + rng() % 80, " \n=-a1"[rng() % 6]);
    }
  }
  return text;
}

// Real text in chunks of about 32 KiB cut at line ends; chunks that are not UTF-8 are left out
// (the reference works on JavaScript strings).
void AddChunksOfFile(const std::string& path, size_t max_bytes, std::vector<std::string>* out) {
  absl::StatusOr<std::string> content = ReadFileToString(path);
  if (!content.ok()) return;
  std::string_view text(*content);
  if (text.size() > max_bytes) text = text.substr(0, max_bytes);
  while (!text.empty()) {
    size_t cut = text.size() <= 32768 ? text.size() : text.rfind('\n', 32768);
    if (cut == std::string_view::npos || cut == 0) cut = std::min<size_t>(text.size(), 32768);
    std::string chunk(text.substr(0, cut));
    text.remove_prefix(cut);
    if (FindInvalidUtf8(chunk.data(), chunk.size()) < 0) out->push_back(std::move(chunk));
  }
}

std::vector<std::vector<int32_t>> ParseIdArrays(const std::string& json) {
  std::vector<std::vector<int32_t>> arrays;
  std::vector<int32_t>* current = nullptr;
  int depth = 0;
  int64_t value = -1;
  for (char c : json) {
    if (c == '[') {
      if (++depth == 2) current = &arrays.emplace_back();
    } else if (c >= '0' && c <= '9') {
      value = (value < 0 ? 0 : value * 10) + (c - '0');
    } else {
      if (value >= 0 && current != nullptr) current->push_back(static_cast<int32_t>(value));
      value = -1;
      if (c == ']' && --depth == 1) current = nullptr;
    }
  }
  return arrays;
}

class TokenizerReferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::Gpt2TokenizerDir().empty() || testing::GptTokenizerPackageDir().empty()) {
      GTEST_SKIP() << testing::kFetchHint;
    }
    if (std::system("node --version > /dev/null 2>&1") != 0) {
      GTEST_SKIP() << "node not found: run scripts/fetch_tokenizer_files.sh (installs nodejs)";
    }
    auto t = BpeTokenizer::LoadFromDirectory(testing::Gpt2TokenizerDir());
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = *std::move(t);
  }

  // Encodes all texts under node and with our tokenizer; expects identical ids.
  void ExpectSameIdsAsReference(const std::vector<std::string>& texts) {
    const std::string dir = testing::MakeTempDir();
    std::string json = "[";
    for (size_t i = 0; i < texts.size(); ++i) {
      if (i > 0) json += ",";
      AppendJsonString(texts[i], /*ascii_only=*/false, &json);
    }
    json += "]";
    testing::WriteFile(dir + "/in.json", json);
    const std::string command =
        "node '" + testing::RepoRoot() + "/data/tools/reference_encode.js' '" +
        testing::GptTokenizerPackageDir() + "' encode '" + dir + "/in.json' '" + dir + "/out.json'";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    absl::StatusOr<std::string> out = ReadFileToString(dir + "/out.json");
    ASSERT_TRUE(out.ok()) << out.status();
    std::vector<std::vector<int32_t>> expected = ParseIdArrays(*out);
    ASSERT_EQ(expected.size(), texts.size());
    int mismatches = 0;
    for (size_t i = 0; i < texts.size() && mismatches < 5; ++i) {
      std::vector<int32_t> ours = tokenizer_->Encode(texts[i]);
      if (ours != expected[i]) {
        ++mismatches;
        ADD_FAILURE() << "text " << i
                      << " differs from gpt-tokenizer: " << std::string(texts[i].substr(0, 200));
      }
    }
    std::filesystem::remove_all(dir);
  }

  std::unique_ptr<BpeTokenizer> tokenizer_;
};

TEST_F(TokenizerReferenceTest, RandomTextsGiveIdenticalIds) {
  std::mt19937_64 rng(20240601);
  std::vector<std::string> texts;
  for (int i = 0; i < 20000; ++i) texts.push_back(RandomText(rng));
  ExpectSameIdsAsReference(texts);
}

TEST_F(TokenizerReferenceTest, RealTextsGiveIdenticalIds) {
  std::vector<std::string> texts;
  const std::string root = testing::RepoRoot();
  for (const char* dir : {"data", "tests/data", "docs", "core"}) {
    if (!std::filesystem::exists(root + "/" + dir)) continue;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(root + "/" + dir)) {
      if (entry.is_regular_file() && entry.file_size() < (1 << 20)) {
        AddChunksOfFile(entry.path().string(), 1 << 20, &texts);
      }
    }
  }
  // Prepared corpora (scripts/prepare_corpus.sh), up to 1 MiB of each.
  const std::string corpora = root + "/corpora/text";
  if (std::filesystem::exists(corpora)) {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(corpora)) {
      if (entry.is_regular_file()) AddChunksOfFile(entry.path().string(), 1 << 20, &texts);
    }
  }
  ASSERT_GT(texts.size(), 10u);
  ExpectSameIdsAsReference(texts);
}

}  // namespace
}  // namespace aoetron::data
