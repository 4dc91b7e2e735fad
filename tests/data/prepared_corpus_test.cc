// The KJV datasets made by scripts/prepare_corpus.sh --kjv-only: they verify, their documents
// decode back to the prepared text, and the loader serves them on two ranks.
#include <gtest/gtest.h>

#include <filesystem>

#include "data/bpe_tokenizer.h"
#include "data/dataset_verify.h"
#include "data/gpt_data_loader.h"
#include "data/json_string.h"
#include "data/sharded_dataset.h"
#include "data/tokenizer_files.h"
#include "tests/data/test_paths.h"

namespace aoetron::data {
namespace {

class PreparedKjvTest : public ::testing::TestWithParam<std::pair<const char*, const char*>> {
 protected:
  void SetUp() override {
    prefix_ = testing::RepoRoot() + "/corpora/datasets/" + GetParam().first;
    tokenizer_dir_ = testing::RepoRoot() + "/corpora/tokenizers/" + GetParam().second;
    if (!std::filesystem::exists(prefix_ + ".manifest")) {
      GTEST_SKIP() << prefix_ << " missing: run scripts/prepare_corpus.sh --kjv-only";
    }
  }
  std::string prefix_, tokenizer_dir_;
};

TEST_P(PreparedKjvTest, VerifiesDecodesAndLoads) {
  auto stats = VerifyDataset(prefix_, 0);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->documents, 1189);
  auto tokenizer = BpeTokenizer::LoadFromDirectory(tokenizer_dir_);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->vocab_size(), stats->vocab_size);
  // Chapter 1 of Genesis round-trips to the prepared JSONL text.
  auto jsonl = ReadFileToString(testing::RepoRoot() + "/corpora/text/kjv/kjv.jsonl");
  ASSERT_TRUE(jsonl.ok());
  std::string first_text;
  ASSERT_TRUE(ExtractJsonStringField(std::string_view(*jsonl).substr(0, jsonl->find('\n')), "text",
                                     &first_text)
                  .ok());
  auto ds = ShardedDataset::Open(prefix_);
  ASSERT_TRUE(ds.ok());
  std::vector<int32_t> ids((*ds)->sequence_length(0));
  (*ds)->ReadTokens(0, 0, ids.size(), ids.data());
  ASSERT_EQ(ids.back(), (*tokenizer)->end_of_text_id());
  ids.pop_back();
  EXPECT_EQ(*(*tokenizer)->Decode(ids), first_text);

  GptDataLoaderConfig config;
  config.datasets = {{prefix_, 1.0}};
  config.seq_length = 128;
  config.global_batch_size = 8;
  config.dp_size = 2;
  config.num_samples = 80;
  config.vocab_size = stats->vocab_size;
  config.cache_dir = testing::MakeTempDir();
  for (int rank = 0; rank < 2; ++rank) {
    config.dp_rank = rank;
    config.build_indices = rank == 0;
    auto loader = GptDataLoader::Create(config);
    ASSERT_TRUE(loader.ok()) << loader.status();
    for (int step = 0; step < 10; ++step) {
      auto batch = (*loader)->Next();
      ASSERT_TRUE(batch.ok()) << batch.status();
      EXPECT_EQ(batch->tokens.size(), 4u * 128u);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, PreparedKjvTest,
                         ::testing::Values(std::make_pair("kjv_gpt2", "gpt2"),
                                           std::make_pair("kjv_kjv8k", "kjv-8192")));

}  // namespace
}  // namespace aoetron::data
