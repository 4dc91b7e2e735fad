// BpeTokenizer with GPT-2's files: gpt-tokenizer's TestPlans.txt cases, known ids, lossless
// round trips for arbitrary bytes, special tokens, long pieces.
#include "data/bpe_tokenizer.h"

#include <gtest/gtest.h>

#include <random>

#include "absl/strings/str_split.h"
#include "data/string_view_compat.h"
#include "data/tokenizer_files.h"
#include "tests/data/test_paths.h"

namespace aoetron::data {
namespace {

class Gpt2TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = testing::Gpt2TokenizerDir();
    if (dir.empty()) return;
    auto t = BpeTokenizer::LoadFromDirectory(dir);
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = t->release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    tokenizer_ = nullptr;
  }
  void SetUp() override {
    if (tokenizer_ == nullptr) GTEST_SKIP() << testing::kFetchHint;
  }
  static BpeTokenizer* tokenizer_;
};
BpeTokenizer* Gpt2TokenizerTest::tokenizer_ = nullptr;

TEST_F(Gpt2TokenizerTest, VocabularyShape) {
  EXPECT_EQ(tokenizer_->vocab_size(), 50257);
  EXPECT_EQ(tokenizer_->end_of_text_id(), 50256);
  EXPECT_EQ(tokenizer_->vocabulary().merges.size(), 50000u);
}

TEST_F(Gpt2TokenizerTest, KnownIds) {
  EXPECT_EQ(tokenizer_->Encode("Hello world"), (std::vector<int32_t>{15496, 995}));
  EXPECT_EQ(tokenizer_->Encode(""), std::vector<int32_t>{});
  EXPECT_EQ(tokenizer_->Encode(" "), std::vector<int32_t>{220});
  // Ordinary text, as gpt-tokenizer encodes it with no special tokens allowed.
  EXPECT_EQ(tokenizer_->Encode("<|endoftext|>"),
            (std::vector<int32_t>{27, 91, 437, 1659, 5239, 91, 29}));
  EXPECT_EQ(tokenizer_->EncodeAllowingSpecial("a<|endoftext|>b"),
            (std::vector<int32_t>{64, 50256, 65}));
}

// gpt-tokenizer's data/TestPlans.txt: blocks of "EncodingName: ...\nSample: ...\nEncoded: [...]"
// separated by blank lines; r50k_base is GPT-2's encoding.
TEST_F(Gpt2TokenizerTest, AllTestPlansOfR50kBase) {
  const std::string package = testing::GptTokenizerPackageDir();
  if (package.empty()) GTEST_SKIP() << testing::kFetchHint;
  absl::StatusOr<std::string> plans = ReadFileToString(package + "/data/TestPlans.txt");
  ASSERT_TRUE(plans.ok()) << plans.status();
  int cases = 0;
  for (absl::string_view block : absl::StrSplit(*plans, "\n\n")) {
    std::vector<absl::string_view> lines = absl::StrSplit(block, '\n');
    if (lines.size() < 3 || lines[0] != "EncodingName: r50k_base") continue;
    ASSERT_TRUE(lines[1].substr(0, 8) == "Sample: ") << lines[1];
    std::string_view sample = ToStd(lines[1].substr(8));
    absl::string_view encoded = lines[2].substr(lines[2].find('[') + 1);
    encoded = encoded.substr(0, encoded.rfind(']'));
    std::vector<int32_t> expected;
    for (absl::string_view number : absl::StrSplit(encoded, ", ", absl::SkipEmpty())) {
      expected.push_back(std::stoi(std::string(number)));
    }
    EXPECT_EQ(tokenizer_->Encode(sample), expected) << "sample: " << sample;
    absl::StatusOr<std::string> decoded = tokenizer_->Decode(expected);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, sample);
    ++cases;
  }
  EXPECT_EQ(cases, 64);
}

TEST_F(Gpt2TokenizerTest, RoundTripsRandomBytesIncludingInvalidUtf8) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bytes(rng() % 200, '\0');
    const bool ascii_heavy = trial % 2 == 0;
    for (char& c : bytes) {
      uint64_t r = rng();
      c = static_cast<char>(ascii_heavy && r % 4 != 0 ? " ae'\n\t1."[r % 8] : r % 256);
    }
    std::vector<int32_t> ids = tokenizer_->Encode(bytes);
    absl::StatusOr<std::string> decoded = tokenizer_->Decode(ids);
    ASSERT_TRUE(decoded.ok());
    ASSERT_EQ(*decoded, bytes) << "trial " << trial;
  }
}

TEST_F(Gpt2TokenizerTest, LongPiecesUseTheHeapPathAndAgreeWithShortPath) {
  // A 100 kB run of one symbol and of spaces: must be fast (no quadratic blow-up) and lossless.
  for (std::string text : {std::string(100000, '='), std::string(100000, ' ') + "x",
                           std::string(5000, 'a'), std::string(3000, '\xff')}) {
    std::vector<int32_t> ids = tokenizer_->Encode(text);
    EXPECT_EQ(*tokenizer_->Decode(ids), text);
  }
  // Same word below and above the short-piece limit: the long-piece result must equal the
  // concatenation of what the short path gives when the merges cannot cross the cut.
  std::string word = "Pneumonoultramicroscopicsilicovolcanoconiosis";
  std::string long_word;
  for (int i = 0; i < 4; ++i) long_word += word;
  std::vector<int32_t> long_ids = tokenizer_->Encode(long_word);
  EXPECT_EQ(*tokenizer_->Decode(long_ids), long_word);
  EXPECT_GT(long_ids.size(), 4u);
}

TEST_F(Gpt2TokenizerTest, DecodeRejectsIdsOutsideTheVocabulary) {
  absl::StatusOr<std::string> decoded = tokenizer_->Decode({15496, 50257});
  ASSERT_FALSE(decoded.ok());
  EXPECT_NE(decoded.status().message().find("position 1"), std::string_view::npos);
}

}  // namespace
}  // namespace aoetron::data
