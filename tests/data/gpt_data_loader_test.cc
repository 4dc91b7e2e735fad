// The per-rank loader: ranks partition every global batch, targets are the next-token shift,
// resuming from consumed_samples continues exactly, blending follows the weights, bad
// configurations and bad tokens give errors.
#include "data/gpt_data_loader.h"

#include <gtest/gtest.h>

#include <map>

#include "data/indexed_dataset_writer.h"
#include "data/shard_manifest.h"
#include "data/string_view_compat.h"
#include "tests/data/test_paths.h"

namespace aoetron::data {
namespace {

// Tokens of dataset `tag` are tag·10000 + position (mod 10000), so a token tells its dataset.
std::string WriteTaggedDataset(const std::string& prefix, int tag, int documents) {
  auto writer = IndexedDatasetWriter::Create(prefix, TokenDType::kUInt16);
  EXPECT_TRUE(writer.ok());
  int64_t position = 0;
  for (int d = 0; d < documents; ++d) {
    std::vector<int32_t> tokens(20 + (d * 7) % 50);
    for (int32_t& t : tokens) t = tag * 10000 + static_cast<int32_t>(position++ % 10000);
    EXPECT_TRUE((*writer)->AddDocument(tokens).ok());
  }
  EXPECT_TRUE((*writer)->Finish().ok());
  return prefix;
}

class GptDataLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    a_ = WriteTaggedDataset(dir_ + "/a", 1, 200);  // < 10000 tokens: every token distinct
    b_ = WriteTaggedDataset(dir_ + "/b", 2, 200);
  }
  GptDataLoaderConfig Config() {
    GptDataLoaderConfig c;
    c.datasets = {{a_, 1.0}};
    c.split_ratios = {90, 10, 0};
    c.seq_length = 16;
    c.global_batch_size = 8;
    c.num_samples = 400;
    c.cache_dir = dir_ + "/cache";
    c.seed = 5;
    return c;
  }
  std::vector<GptBatch> Take(const GptDataLoaderConfig& c, int n, int64_t consumed = 0) {
    auto loader = GptDataLoader::Create(c, consumed);
    EXPECT_TRUE(loader.ok()) << loader.status();
    std::vector<GptBatch> out;
    for (int i = 0; i < n; ++i) {
      auto batch = (*loader)->Next();
      EXPECT_TRUE(batch.ok()) << batch.status();
      out.push_back(*std::move(batch));
    }
    EXPECT_EQ((*loader)->consumed_samples(),
              consumed + n * (*loader)->micro_batch_size() * c.dp_size);
    return out;
  }
  std::string dir_, a_, b_;
};

TEST_F(GptDataLoaderTest, TargetsAreTheNextTokens) {
  GptDataLoaderConfig c = Config();
  auto dataset = BlendedGptDataset::Create(c);
  ASSERT_TRUE(dataset.ok());
  for (const GptBatch& batch : Take(c, 3)) {
    ASSERT_EQ(batch.tokens.size(), 8u * 16u);
    for (int64_t row = 0; row < batch.batch_size; ++row) {
      std::vector<int32_t> sample(17);
      ASSERT_TRUE((*dataset)->GetSample(batch.first_sample + row, sample.data()).ok());
      for (int t = 0; t < 16; ++t) {
        EXPECT_EQ(batch.tokens[row * 16 + t], sample[t]);
        EXPECT_EQ(batch.targets[row * 16 + t], sample[t + 1]);
      }
    }
  }
}

TEST_F(GptDataLoaderTest, RanksPartitionEachGlobalBatch) {
  GptDataLoaderConfig c = Config();
  std::vector<GptBatch> whole = Take(c, 4);  // dp 1: 4 global batches of 8
  c.dp_size = 4;
  c.micro_batch_size = 1;  // 2 micro-batches of 1 row per rank per global batch
  std::vector<std::vector<GptBatch>> per_rank;
  for (int r = 0; r < 4; ++r) {
    c.dp_rank = r;
    per_rank.push_back(Take(c, 8));
  }
  for (int g = 0; g < 4; ++g) {
    // Megatron order: micro step m covers 4 samples, rank r takes the r-th.
    for (int m = 0; m < 2; ++m) {
      for (int r = 0; r < 4; ++r) {
        const GptBatch& mine = per_rank[r][g * 2 + m];
        const int row = m * 4 + r;
        EXPECT_EQ(mine.first_sample, g * 8 + row);
        EXPECT_EQ(mine.tokens, std::vector<int32_t>(whole[g].tokens.begin() + row * 16,
                                                    whole[g].tokens.begin() + row * 16 + 16));
      }
    }
  }
}

TEST_F(GptDataLoaderTest, ResumingFromConsumedSamplesContinuesExactly) {
  GptDataLoaderConfig c = Config();
  c.dp_size = 2;
  c.dp_rank = 1;
  std::vector<GptBatch> straight = Take(c, 10);
  std::vector<GptBatch> resumed = Take(c, 4, /*consumed=*/6 * 8);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(resumed[i].tokens, straight[6 + i].tokens);
    EXPECT_EQ(resumed[i].targets, straight[6 + i].targets);
  }
  EXPECT_FALSE(GptDataLoader::Create(c, 3).ok());  // not a multiple of mbs·dp
}

TEST_F(GptDataLoaderTest, SplitsAreDisjoint) {
  GptDataLoaderConfig c = Config();
  c.num_samples = 0;  // one epoch
  std::set<int32_t> train_tokens;
  for (const GptBatch& b : Take(c, 20)) train_tokens.insert(b.tokens.begin(), b.tokens.end());
  c.split = "valid";
  for (const GptBatch& b : Take(c, 5)) {
    for (int32_t t : b.tokens) ASSERT_FALSE(train_tokens.count(t)) << t;
  }
}

TEST_F(GptDataLoaderTest, BlendFollowsTheWeights) {
  GptDataLoaderConfig c = Config();
  c.datasets = {{a_, 3.0}, {b_, 1.0}};
  c.num_samples = 800;
  std::map<int, int> rows;
  for (const GptBatch& batch : Take(c, 100)) {
    for (int64_t row = 0; row < batch.batch_size; ++row) ++rows[batch.tokens[row * 16] / 10000];
  }
  EXPECT_EQ(rows[1], 600);
  EXPECT_EQ(rows[2], 200);
}

TEST_F(GptDataLoaderTest, TokensBeyondTheVocabularyAreAnError) {
  GptDataLoaderConfig c = Config();
  c.vocab_size = 10050;  // dataset a's tokens go up to 10000 + 9999
  auto loader = GptDataLoader::Create(c);
  ASSERT_TRUE(loader.ok());
  absl::Status error;
  for (int i = 0; i < 200 && error.ok(); ++i) error = (*loader)->Next().status();
  ASSERT_FALSE(error.ok());
  EXPECT_NE(ToStd(error.message()).find("outside the vocabulary"), std::string::npos);
  EXPECT_FALSE((*loader)->Next().ok());  // stays failed
}

TEST_F(GptDataLoaderTest, BadConfigurations) {
  GptDataLoaderConfig c = Config();
  c.dp_size = 3;  // 8 is not a multiple of 3
  EXPECT_FALSE(GptDataLoader::Create(c).ok());
  c = Config();
  c.dp_rank = 1;
  EXPECT_FALSE(GptDataLoader::Create(c).ok());
  c = Config();
  c.datasets = {{dir_ + "/missing", 1.0}};
  auto missing = GptDataLoader::Create(c);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(ToStd(missing.status().message()).find("missing"), std::string::npos);
  c = Config();
  c.split_ratios = {1, 0, 0};
  c.split = "test";
  EXPECT_FALSE(GptDataLoader::Create(c).ok());  // empty split
  // Weights whose sum overflows would normalise to shares of 0.
  c = Config();
  c.datasets = {{a_, 1e308}, {b_, 1e308}};
  auto overflow = GptDataLoader::Create(c);
  ASSERT_FALSE(overflow.ok());
  EXPECT_NE(ToStd(overflow.status().message()).find("finite sum"), std::string::npos);
}

TEST_F(GptDataLoaderTest, MissingShardIsNamed) {
  ShardManifest m;
  m.vocab_size = 30000;
  m.dtype = "uint16";
  m.shards = {{"a", 200, 0}, {"gone", 1, 1}};
  auto stats = ShardedDataset::Open(a_);
  ASSERT_TRUE(stats.ok());
  m.shards[0].tokens = (*stats)->num_tokens();
  ASSERT_TRUE(WriteShardManifest(m, dir_ + "/set.manifest").ok());
  auto opened = ShardedDataset::Open(dir_ + "/set");
  ASSERT_FALSE(opened.ok());
  EXPECT_TRUE(absl::IsNotFound(opened.status())) << opened.status();
  EXPECT_NE(ToStd(opened.status().message()).find("set.manifest: shard 1 (gone)"),
            std::string::npos)
      << opened.status();
  EXPECT_NE(ToStd(opened.status().message()).find("gone.idx"), std::string::npos);
  m.shards.pop_back();
  m.shards[0].tokens += 1;  // counts disagree with the shard
  ASSERT_TRUE(WriteShardManifest(m, dir_ + "/set.manifest").ok());
  opened = ShardedDataset::Open(dir_ + "/set");
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(ToStd(opened.status().message()).find("the manifest says"), std::string::npos);
}

}  // namespace
}  // namespace aoetron::data
