// Training a vocabulary: exact size, GPT-2 layout, files that load back, lossless encoding,
// determinism across thread counts, and a learnt vocabulary that compresses its corpus.
#include "data/bpe_trainer.h"

#include <gtest/gtest.h>

#include <random>

#include "data/bpe_tokenizer.h"
#include "data/byte_unicode.h"
#include "data/string_view_compat.h"
#include "data/tokenizer_files.h"
#include "tests/data/test_paths.h"

namespace aoetron::data {
namespace {

std::vector<std::string> Corpus() {
  // Words of random syllables (a few hundred of them, skewed towards the first) so that merges
  // have clear winners and there are enough pairs for a few hundred merges; some Unicode too.
  std::mt19937_64 rng(11);
  const std::vector<std::string> syllables = {"the", "ka",  "ro", "mi", "ex", "pert", "da", "ta",
                                              "to",  "ken", "ï",  "数", "据", "42",   "'s"};
  std::vector<std::string> words;
  for (int w = 0; w < 400; ++w) {
    std::string word;
    for (int s = 0; s < 1 + w % 4; ++s) word += syllables[rng() % syllables.size()];
    words.push_back(word);
  }
  std::vector<std::string> texts;
  for (int d = 0; d < 200; ++d) {
    std::string text;
    for (int w = 0; w < 300; ++w) {
      const size_t i = std::min<size_t>(words.size() - 1, (rng() % 20) * (rng() % 20));
      text += (w % 17 == 0 ? "\n" : " ") + words[i];
    }
    texts.push_back(text);
  }
  return texts;
}

TEST(BpeTrainer, TrainsTheRequestedSizeInGpt2Layout) {
  BpeTrainerOptions options;
  options.vocab_size = 300;
  auto vocab = TrainBpe(Corpus(), options);
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  EXPECT_EQ(vocab->size(), 300);
  EXPECT_EQ(vocab->tokens.back(), kEndOfTextToken);
  EXPECT_TRUE(vocab->is_special.back());
  for (int id = 0; id < 256; ++id) EXPECT_EQ(vocab->tokens[id], std::string(1, ByteAtRank(id)));
  // Every merge builds the token of id 256 + its rank.
  for (size_t r = 0; r < vocab->merges.size(); ++r) {
    const auto [l, rr] = vocab->merges[r];
    EXPECT_EQ(vocab->tokens[256 + r], vocab->tokens[l] + vocab->tokens[rr]);
  }
  // The most frequent pair of the corpus is merged first: " t"+"h" style pairs start with space.
  EXPECT_EQ(vocab->tokens[256].size(), 2u);
}

TEST(BpeTrainer, FilesRoundTripAndEncodingIsLosslessAndCompresses) {
  BpeTrainerOptions options;
  options.vocab_size = 400;
  auto vocab = TrainBpe(Corpus(), options);
  ASSERT_TRUE(vocab.ok());
  const std::string dir = testing::MakeTempDir();
  ASSERT_TRUE(WriteGpt2TokenizerFiles(*vocab, dir).ok());
  auto loaded = ReadGpt2TokenizerFiles(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->tokens, vocab->tokens);
  EXPECT_EQ(loaded->merges, vocab->merges);
  auto tokenizer = BpeTokenizer::Create(*std::move(loaded));
  ASSERT_TRUE(tokenizer.ok());
  int64_t bytes = 0, tokens = 0;
  for (const std::string& text : Corpus()) {
    std::vector<int32_t> ids = (*tokenizer)->Encode(text);
    ASSERT_EQ(*(*tokenizer)->Decode(ids), text);
    bytes += text.size();
    tokens += ids.size();
  }
  EXPECT_GT(static_cast<double>(bytes) / tokens, 3.0);  // many words became single tokens
  // Arbitrary bytes still round-trip.
  const std::string odd = "\xff\xfe zzz \x01\x02 日本";
  EXPECT_EQ(*(*tokenizer)->Decode((*tokenizer)->Encode(odd)), odd);
}

TEST(BpeTrainer, DeterministicForAnyThreadCount) {
  BpeTrainerOptions one, two;
  one.vocab_size = two.vocab_size = 350;
  one.num_threads = 1;
  two.num_threads = 2;
  auto a = TrainBpe(Corpus(), one);
  auto b = TrainBpe(Corpus(), two);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->tokens, b->tokens);
  EXPECT_EQ(a->merges, b->merges);
}

TEST(BpeTrainer, StopsWhenNothingRepeatsAndRejectsTinySizes) {
  BpeTrainerOptions options;
  options.vocab_size = 5000;
  auto vocab = TrainBpe({"abcdefg"}, options);  // no pair occurs twice
  ASSERT_TRUE(vocab.ok());
  EXPECT_EQ(vocab->size(), 257);
  options.vocab_size = 100;
  EXPECT_FALSE(TrainBpe({"x"}, options).ok());
}

TEST(TokenizerFiles, ErrorsNameTheFileAndPlace) {
  std::string encoder = "{";
  for (int id = 0; id < 256; ++id) {
    if (id > 0) encoder += ", ";
    std::string text = BytesToMappedText(std::string(1, ByteAtRank(id)));
    if (text == "\"" || text == "\\") text = "\\" + text;
    encoder.append("\"").append(text).append("\": ").append(std::to_string(id));
  }
  const std::string good = encoder + ", \"Ġt\": 256}";
  ASSERT_TRUE(ParseGpt2TokenizerFiles(good, "e.json", "#version: 0.2\nĠ t\n", "v.bpe").ok());
  auto message = [](const absl::StatusOr<BpeVocabulary>& r) {
    EXPECT_FALSE(r.ok());
    return std::string(ToStd(r.status().message()));
  };
  EXPECT_NE(message(ParseGpt2TokenizerFiles(good, "e.json", "#version: 0.2\nĠ t\nĠ x y\n", "v.bpe"))
                .find("v.bpe: line 3"),
            std::string::npos);
  EXPECT_NE(message(ParseGpt2TokenizerFiles(good, "e.json", "Ġ q\n", "v.bpe"))
                .find("v.bpe: line 1: merged token 'Ġq' is not in e.json"),
            std::string::npos);
  EXPECT_NE(message(ParseGpt2TokenizerFiles(encoder + ", \"Ġt\": x}", "e.json", "", "v.bpe"))
                .find("e.json: byte offset"),
            std::string::npos);
  EXPECT_NE(message(ParseGpt2TokenizerFiles(encoder + ", \"Ġt\": 300}", "e.json", "", "v"))
                .find("token id 300"),
            std::string::npos);
  EXPECT_NE(message(ParseGpt2TokenizerFiles("{\"a\": 0}", "e.json", "", "v"))
                .find("no token for the single byte"),
            std::string::npos);
  EXPECT_NE(
      message(ParseGpt2TokenizerFiles(good + "x", "e.json", "", "v")).find("unexpected text after"),
      std::string::npos);
  EXPECT_NE(
      message(ReadGpt2TokenizerFiles("/nonexistent/dir")).find("/nonexistent/dir/encoder.json"),
      std::string::npos);
}

}  // namespace
}  // namespace aoetron::data
