// Data sources: determinism, the shift between tokens and targets, the synthetic chain's
// structure, token-file sampling and held-out regions, and file errors that name the file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "json_test_util.h"
#include "launcher/batch_source.h"
#include "launcher/synthetic_data.h"
#include "launcher/token_file_data.h"

namespace aoetron {
namespace {

using ::testing::HasSubstr;

struct Batch {
  Tensor tokens, targets;
  Batch(int64_t b, int64_t t)
      : tokens(Tensor::Empty({b, t}, DType::kI32)), targets(Tensor::Empty({b, t}, DType::kI32)) {}
  std::vector<int32_t> TokenVector() const {
    return {tokens.data<int32_t>(), tokens.data<int32_t>() + tokens.numel()};
  }
  int32_t token(int64_t b, int64_t t) const {
    return tokens.data<int32_t>()[b * tokens.dim(1) + t];
  }
  int32_t target(int64_t b, int64_t t) const {
    return targets.data<int32_t>()[b * targets.dim(1) + t];
  }
};

TEST(SyntheticBigramSourceTest, SamplesFollowTheTableAndAreDeterministic) {
  const SyntheticBigramSource source(/*vocab_size=*/50, /*branching=*/3, /*seed=*/9,
                                     DataSplit::kTrain);
  Batch first(4, 16), again(4, 16), other(4, 16);
  source.FillBatch(5, first.tokens, first.targets);
  source.FillBatch(2, other.tokens, other.targets);
  source.FillBatch(5, again.tokens, again.targets);
  EXPECT_EQ(first.TokenVector(), again.TokenVector());
  EXPECT_NE(first.TokenVector(), other.TokenVector());
  for (int64_t b = 0; b < 4; ++b) {
    for (int64_t t = 0; t < 16; ++t) {
      const int32_t token = first.token(b, t), target = first.target(b, t);
      ASSERT_GE(token, 0);
      ASSERT_LT(token, 50);
      const int32_t* successors = source.successors(token);
      EXPECT_TRUE(target == successors[0] || target == successors[1] || target == successors[2])
          << "target " << target << " is not a successor of " << token;
      if (t + 1 < 16) {
        EXPECT_EQ(first.token(b, t + 1), target);  // targets are tokens shifted by one
      }
    }
  }
}

TEST(SyntheticBigramSourceTest, EvalSplitSharesTheTableButNotTheSamples) {
  const SyntheticBigramSource train(64, 4, 1, DataSplit::kTrain);
  const SyntheticBigramSource eval(64, 4, 1, DataSplit::kEval);
  for (int32_t v = 0; v < 64; ++v) {
    for (int k = 0; k < 4; ++k) EXPECT_EQ(train.successors(v)[k], eval.successors(v)[k]);
  }
  Batch a(2, 32), b(2, 32);
  train.FillBatch(0, a.tokens, a.targets);
  eval.FillBatch(0, b.tokens, b.targets);
  EXPECT_NE(a.TokenVector(), b.TokenVector());
  // A different seed gives a different chain.
  const SyntheticBigramSource reseeded(64, 4, 2, DataSplit::kTrain);
  int same = 0;
  for (int32_t v = 0; v < 64; ++v) same += reseeded.successors(v)[0] == train.successors(v)[0];
  EXPECT_LT(same, 16);
}

// Writes `count` uint16 tokens with token i = i % modulus, little-endian.
std::string WriteTokenFile(const std::string& name, int64_t count, int64_t modulus) {
  const std::string path = testing::MakeTempDir("tokens") + "/" + name;
  std::ofstream file(path, std::ios::binary);
  for (int64_t i = 0; i < count; ++i) {
    const uint16_t token = static_cast<uint16_t>(i % modulus);
    const char bytes[2] = {static_cast<char>(token & 0xff), static_cast<char>(token >> 8)};
    file.write(bytes, 2);
  }
  return path;
}

TEST(TokenFileSourceTest, SamplesAreConsecutiveTokensOfTheFile) {
  // Token value = position, so every token tells where it came from.
  const std::string path = WriteTokenFile("positions.bin", 1000, 1000);
  absl::StatusOr<std::shared_ptr<const MappedTokenFile>> file = MappedTokenFile::Open(path, 1000);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->num_tokens(), 1000);
  const TokenFileSource source(*file, 100, 600, /*seq_len=*/20, /*seed=*/3, /*stream=*/1);
  Batch batch(8, 20);
  std::set<int32_t> starts;
  for (int64_t index = 0; index < 4; ++index) {
    source.FillBatch(index, batch.tokens, batch.targets);
    for (int64_t b = 0; b < 8; ++b) {
      const int32_t start = batch.token(b, 0);
      EXPECT_EQ(start, source.SampleStart(index * 8 + b));
      starts.insert(start);
      EXPECT_GE(start, 100);
      EXPECT_LE(start + 20, 599);  // the last target stays inside [100, 600)
      for (int64_t t = 0; t < 20; ++t) {
        EXPECT_EQ(batch.token(b, t), start + t);
        EXPECT_EQ(batch.target(b, t), start + t + 1);
      }
    }
  }
  EXPECT_GT(starts.size(), 25u);  // 32 samples, positions spread out
}

TEST(TokenFileSourceTest, HeldOutTailIsNeverTrainedOn) {
  const std::string path = WriteTokenFile("split.bin", 1000, 1000);
  config::TrainConfig c;
  c.mutable_model()->set_vocab_size(1000);
  c.mutable_model()->set_seq_len(16);
  c.mutable_data()->set_source(config::DataSection::token_file);
  c.mutable_data()->set_token_file_path(path);
  c.mutable_data()->set_eval_fraction(0.2);  // positions 800..999 are held out
  absl::StatusOr<BatchSources> sources = OpenBatchSources(c);
  ASSERT_TRUE(sources.ok()) << sources.status();
  ASSERT_NE(sources->eval, nullptr);
  Batch batch(16, 16);
  for (int64_t index = 0; index < 8; ++index) {
    sources->train->FillBatch(index, batch.tokens, batch.targets);
    for (int64_t b = 0; b < 16; ++b) EXPECT_LT(batch.target(b, 15), 800);
    sources->eval->FillBatch(index, batch.tokens, batch.targets);
    for (int64_t b = 0; b < 16; ++b) EXPECT_GE(batch.token(b, 0), 800);
  }
}

TEST(TokenFileSourceTest, FileErrorsNameTheFile) {
  std::string error(MappedTokenFile::Open("/no/such/tokens.bin", 100).status().message());
  EXPECT_THAT(error, HasSubstr("/no/such/tokens.bin"));

  const std::string odd = testing::MakeTempDir("odd") + "/odd.bin";
  std::ofstream(odd, std::ios::binary) << "abc";
  error = std::string(MappedTokenFile::Open(odd, 100).status().message());
  EXPECT_THAT(error, HasSubstr(odd));
  EXPECT_THAT(error, HasSubstr("not a whole number"));

  const std::string big = WriteTokenFile("big_tokens.bin", 300, 300);
  error = std::string(MappedTokenFile::Open(big, 256).status().message());
  EXPECT_THAT(error, HasSubstr(big));
  EXPECT_THAT(error, HasSubstr("token 256 at position 256 is ≥ model.vocab_size (256)"));

  const std::string short_file = WriteTokenFile("short.bin", 10, 10);
  config::TrainConfig c;
  c.mutable_model()->set_seq_len(16);
  c.mutable_data()->set_source(config::DataSection::token_file);
  c.mutable_data()->set_token_file_path(short_file);
  error = std::string(OpenBatchSources(c).status().message());
  EXPECT_THAT(error, HasSubstr(short_file));
  EXPECT_THAT(error, HasSubstr("model.seq_len + 1 = 17"));
}

}  // namespace
}  // namespace aoetron
