// GPT samples: sample index against a slow reference, epochs, shuffles, the on-disk cache and
// its multi-rank protocol, splits and blending (against Megatron's algorithm by hand).
#include "data/gpt_dataset.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <numeric>
#include <thread>

#include "data/blending.h"
#include "data/dataset_split.h"
#include "data/indexed_dataset_writer.h"
#include "data/numpy_sum.h"
#include "data/sample_index_cache.h"
#include "data/string_view_compat.h"
#include "tests/data/test_paths.h"

namespace aoetron::data {
namespace {

// A dataset whose token at global position p is p mod 50000, with the given sequence lengths.
std::string WriteCountingDataset(const std::string& prefix, const std::vector<int32_t>& lengths) {
  auto writer = IndexedDatasetWriter::Create(prefix, TokenDType::kUInt16);
  EXPECT_TRUE(writer.ok());
  int64_t position = 0;
  for (int32_t length : lengths) {
    std::vector<int32_t> tokens(length);
    for (int32_t& t : tokens) t = static_cast<int32_t>(position++ % 50000);
    EXPECT_TRUE((*writer)->AddDocument(tokens).ok());
  }
  EXPECT_TRUE((*writer)->Finish().ok());
  return prefix;
}

GptSampleIndexRequest Request(std::vector<int32_t> lengths, int64_t seq, int64_t samples,
                              uint64_t seed, SampleOrder order = SampleOrder::kMegatronCore) {
  GptSampleIndexRequest r;
  r.order = order;
  r.sequence_lengths = lengths;
  for (size_t i = 0; i < lengths.size(); ++i) r.sequence_ids.push_back(100 + i);
  r.seq_length = seq;
  r.num_samples = samples;
  r.seed = seed;
  return r;
}

TEST(GptSampleIndex, SamplesAreConsecutiveWindowsOfTheShuffledStream) {
  const std::vector<int32_t> lengths = {5, 1, 17, 0, 3, 40, 2, 9};  // 77 tokens, one empty
  for (int64_t seq : {1, 4, 16, 100}) {
    GptSampleIndexRequest r = Request(lengths, seq, /*samples=*/25, /*seed=*/3);
    auto index = BuildGptSampleIndex(r);
    ASSERT_TRUE(index.ok()) << index.status();
    // The reference: the sequences in document_index order as one token stream, each token
    // named (sequence id, offset). Sample s must be stream[s·L, s·L + L].
    std::vector<std::pair<int64_t, int64_t>> stream;
    for (int64_t id : index->document_index) {
      for (int64_t o = 0; o < lengths[id - 100]; ++o) stream.emplace_back(id, o);
    }
    ASSERT_GE(index->num_samples(), 25);
    EXPECT_EQ(index->num_samples(), (static_cast<int64_t>(stream.size()) - 1) / seq);
    for (int64_t s = 0; s <= index->num_samples(); ++s) {
      const auto& start = stream[s * seq];
      // A sample may start on empty sequences (sample 0 always starts at position 0, as
      // Megatron's does): its first token is in the next non-empty one.
      int64_t p = index->sample_doc_position[s];
      while (lengths[index->document_index[p] - 100] == 0) ++p;
      EXPECT_EQ(index->document_index[p], start.first);
      // A sample boundary is the start of the next sample, in the shared token.
      EXPECT_EQ(index->sample_offset[s], start.second) << "seq " << seq << " sample " << s;
    }
  }
}

// Megatron-Core's epochs, worked by hand: 50 sequences of 1..50 tokens (1275 per epoch), L 32,
// N 100 → 3 epochs (2550 < 100·32 + 1 ≤ 3825); samples before the last epoch
// (2·1275 − 1) // 32 = 79, from the last 100 − 79 = 21 < int(0.8 · (1274 // 32 = 39)) = 31: the
// last epoch is kept apart. So the first 100 positions hold every sequence twice, the last 50
// once each, and the shuffle index permutes [0, 79) and then [79, 119) on their own.
TEST(GptSampleIndex, MegatronCoreKeepsAShortLastEpochApart) {
  std::vector<int32_t> lengths(50);
  std::iota(lengths.begin(), lengths.end(), 1);
  auto a = BuildGptSampleIndex(Request(lengths, 32, 100, 7));
  auto b = BuildGptSampleIndex(Request(lengths, 32, 100, 7));
  auto c = BuildGptSampleIndex(Request(lengths, 32, 100, 8));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->num_epochs, 3);
  EXPECT_TRUE(a->separate_last_epoch);
  EXPECT_EQ(a->num_samples(), (3 * 1275 - 1) / 32);
  EXPECT_EQ(a->document_index, b->document_index);
  EXPECT_EQ(a->shuffle_index, b->shuffle_index);
  EXPECT_NE(a->document_index, c->document_index);
  std::vector<int64_t> first(a->document_index.begin(), a->document_index.begin() + 100);
  std::vector<int64_t> last(a->document_index.begin() + 100, a->document_index.end());
  std::sort(first.begin(), first.end());
  std::sort(last.begin(), last.end());
  for (int i = 0; i < 100; ++i) ASSERT_EQ(first[i], 100 + i / 2);
  for (int i = 0; i < 50; ++i) ASSERT_EQ(last[i], 100 + i);
  // The two epochs before the last are shuffled together, not one after the other.
  std::vector<int64_t> epoch0(a->document_index.begin(), a->document_index.begin() + 50);
  std::sort(epoch0.begin(), epoch0.end());
  EXPECT_NE(std::adjacent_find(epoch0.begin(), epoch0.end()), epoch0.end());
  for (int64_t i = 0; i < a->num_samples(); ++i) {
    EXPECT_EQ(a->shuffle_index[i] < 79, i < 79) << "position " << i;
  }
  // With 110 samples, 31 come from the last epoch: no longer below the threshold.
  auto whole = BuildGptSampleIndex(Request(lengths, 32, 110, 7));
  ASSERT_TRUE(whole.ok());
  EXPECT_FALSE(whole->separate_last_epoch);
  // One epoch (N = 0): a plain shuffle of every sequence and every sample.
  auto one = BuildGptSampleIndex(Request(lengths, 32, 0, 7));
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->num_epochs, 1);
  EXPECT_FALSE(one->separate_last_epoch);
}

TEST(GptSampleIndex, MegatronCoreSeedsMustFitNumpy) {
  EXPECT_FALSE(BuildGptSampleIndex(Request({30}, 4, 0, 1ull << 32)).ok());
  EXPECT_TRUE(BuildGptSampleIndex(Request({30}, 4, 0, (1ull << 32) - 1)).ok());
  EXPECT_TRUE(BuildGptSampleIndex(Request({30}, 4, 0, 1ull << 32, SampleOrder::kAoetronV1)).ok());
}

TEST(GptSampleIndex, AoetronV1EpochsArePermutationsAndShufflesAreDeterministic) {
  std::vector<int32_t> lengths(50);
  std::iota(lengths.begin(), lengths.end(), 1);  // 1275 tokens per epoch
  const SampleOrder v1 = SampleOrder::kAoetronV1;
  auto a = BuildGptSampleIndex(Request(lengths, 32, 100, 7, v1));  // needs 3 epochs
  auto b = BuildGptSampleIndex(Request(lengths, 32, 100, 7, v1));
  auto c = BuildGptSampleIndex(Request(lengths, 32, 100, 8, v1));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->num_epochs, 3);
  EXPECT_EQ(a->document_index, b->document_index);
  EXPECT_EQ(a->shuffle_index, b->shuffle_index);
  EXPECT_NE(a->document_index, c->document_index);
  for (int e = 0; e < 3; ++e) {
    std::vector<int64_t> epoch(a->document_index.begin() + 50 * e,
                               a->document_index.begin() + 50 * (e + 1));
    std::sort(epoch.begin(), epoch.end());
    for (int i = 0; i < 50; ++i) ASSERT_EQ(epoch[i], 100 + i);
  }
  EXPECT_NE(std::vector<int64_t>(a->document_index.begin(), a->document_index.begin() + 50),
            std::vector<int64_t>(a->document_index.begin() + 50, a->document_index.begin() + 100));
  // The shuffle is a permutation that finishes each epoch's samples before the next epoch's.
  std::vector<int64_t> sorted = a->shuffle_index;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < a->num_samples(); ++i) ASSERT_EQ(sorted[i], i);
  int64_t last_epoch = 0;
  for (int64_t s : a->shuffle_index) {
    const int64_t epoch = std::min<int64_t>(a->sample_doc_position[s] / 50, 2);
    EXPECT_GE(epoch, last_epoch);
    last_epoch = epoch;
  }
}

TEST(GptSampleIndex, RejectsImpossibleRequests) {
  EXPECT_FALSE(BuildGptSampleIndex(Request({0, 0}, 4, 0, 1)).ok());  // no tokens
  EXPECT_FALSE(BuildGptSampleIndex(Request({3}, 4, 0, 1)).ok());     // less than one sample
  EXPECT_FALSE(BuildGptSampleIndex(Request({30}, 0, 0, 1)).ok());    // seq_length 0
  EXPECT_TRUE(BuildGptSampleIndex(Request({3}, 4, 10, 1)).ok());     // many epochs are fine
}

TEST(GptDataset, GetSampleReadsTheIndexedTokensAcrossShardsOfSequences) {
  const std::string dir = testing::MakeTempDir();
  const std::vector<int32_t> lengths = {10, 3, 25, 7, 1, 30, 12, 4, 8};
  auto data = ShardedDataset::Open(WriteCountingDataset(dir + "/count", lengths));
  ASSERT_TRUE(data.ok());
  std::shared_ptr<const ShardedDataset> shared = *std::move(data);
  GptDatasetOptions options;
  options.seq_length = 8;
  options.num_samples = 40;
  options.split_ratios = {1, 0, 0};
  options.cache_dir = dir + "/cache";
  auto ds = GptDataset::Create(shared, options);
  ASSERT_TRUE(ds.ok()) << ds.status();
  std::vector<int64_t> starts(lengths.size() + 1, 0);
  for (size_t i = 0; i < lengths.size(); ++i) starts[i + 1] = starts[i] + lengths[i];
  const GptSampleIndex& index = (*ds)->index();
  for (int64_t i = 0; i < (*ds)->num_samples(); ++i) {
    std::vector<int32_t> sample(9);
    (*ds)->GetSample(i, sample.data());
    // Expected: walk the stream from the sample's start for 9 tokens.
    const int64_t s = index.shuffle_index[i];
    int64_t p = index.sample_doc_position[s];
    int64_t o = index.sample_offset[s];
    for (int t = 0; t < 9; ++t) {
      while (o >= lengths[index.document_index[p]]) {
        ++p;
        o = 0;
      }
      ASSERT_EQ(sample[t], starts[index.document_index[p]] + o) << "sample " << i << " t " << t;
      ++o;
    }
  }
}

TEST(SampleIndexCache, BuiltOnceReusedAndRebuiltWhenInputsChange) {
  const std::string dir = testing::MakeTempDir();
  const std::string prefix = WriteCountingDataset(dir + "/d", {100, 200, 50});
  GptDatasetOptions options;
  options.seq_length = 16;
  options.split_ratios = {1, 0, 0};
  options.cache_dir = dir + "/cache";
  auto open = [&] {
    auto data = ShardedDataset::Open(prefix);
    EXPECT_TRUE(data.ok());
    return GptDataset::Create(std::shared_ptr<const ShardedDataset>(*std::move(data)), options);
  };
  auto first = open();
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string path = (*first)->cache_path();
  ASSERT_TRUE(std::filesystem::exists(path));
  const auto built_at = std::filesystem::last_write_time(path);
  auto second = open();
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*second)->cache_path(), path);
  EXPECT_EQ(std::filesystem::last_write_time(path), built_at);  // reused, not rewritten
  EXPECT_EQ((*second)->index().shuffle_index, (*first)->index().shuffle_index);
  options.seq_length = 32;  // another input -> another file
  auto third = open();
  ASSERT_TRUE(third.ok());
  EXPECT_NE((*third)->cache_path(), path);
  options.seq_length = 16;
  WriteCountingDataset(prefix, {100, 200, 51});  // changed data -> another file
  auto fourth = open();
  ASSERT_TRUE(fourth.ok());
  EXPECT_NE((*fourth)->cache_path(), path);
  // A corrupted cache file is detected (checksum) and the builder replaces it.
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 4);
  auto reread = ReadSampleIndexCache(path, "x");
  EXPECT_FALSE(reread.ok());
  WriteCountingDataset(prefix, {100, 200, 50});
  auto rebuilt = open();
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_EQ((*rebuilt)->index().shuffle_index, (*first)->index().shuffle_index);
}

TEST(SampleIndexCache, OneBuilderManyWaitersNoRaces) {
  for (int round = 0; round < 3; ++round) {
    const std::string dir = testing::MakeTempDir();
    std::atomic<int> builds{0};
    const std::string description = "race test " + std::to_string(round);
    auto build = [&]() -> absl::StatusOr<GptSampleIndex> {
      ++builds;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // a slow build
      return BuildGptSampleIndex(Request(std::vector<int32_t>(1000, 37), 64, 500, round));
    };
    std::vector<absl::StatusOr<GptSampleIndex>> results(6);
    std::vector<std::thread> ranks;
    for (int r = 0; r < 6; ++r) {
      ranks.emplace_back([&, r] {
        results[r] = LoadOrBuildSampleIndex(dir, description, /*is_builder=*/r == 0, 30, build);
      });
    }
    for (auto& t : ranks) t.join();
    EXPECT_EQ(builds.load(), 1);
    for (int r = 0; r < 6; ++r) {
      ASSERT_TRUE(results[r].ok()) << results[r].status();
      EXPECT_EQ(results[r]->shuffle_index, results[0]->shuffle_index);
    }
    // No temporary files are left behind.
    int files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      EXPECT_EQ(e.path().extension(), ".gptidx") << e.path();
      ++files;
    }
    EXPECT_EQ(files, 1);
  }
}

TEST(SampleIndexCache, WaiterTimesOutWithAClearError) {
  const std::string dir = testing::MakeTempDir();
  auto result = LoadOrBuildSampleIndex(dir, "nobody builds this", false, 0.2,
                                       []() -> absl::StatusOr<GptSampleIndex> {
                                         ADD_FAILURE() << "a waiter must not build";
                                         return GptSampleIndex();
                                       });
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(absl::IsDeadlineExceeded(result.status()));
  EXPECT_NE(ToStd(result.status().message()).find(".gptidx"), std::string::npos);
}

using Ranges = std::vector<std::pair<int64_t, int64_t>>;

TEST(DatasetSplit, MegatronCoreRoundsCumulativeShares) {
  auto r = ComputeSplitRanges({969, 30, 1}, 1000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (Ranges{{0, 969}, {969, 999}, {999, 1000}}));
  // Bookends 0, 1/3, 2/3, 1 of 10: round(3.33) = 3, round(6.67) = 7.
  r = ComputeSplitRanges({1, 1, 1}, 10);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (Ranges{{0, 3}, {3, 7}, {7, 10}}));
  // KJV's 1189 chapters at 949,50,1: round(0.949 · 1189 = 1128.36) = 1128 (the legacy rule
  // gives 1129, below).
  r = ComputeSplitRanges({949, 50, 1}, 1189);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (Ranges{{0, 1128}, {1128, 1188}, {1188, 1189}}));
  // A zero share builds no split.
  r = ComputeSplitRanges({1, 0, 0}, 7);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (Ranges{{0, 7}, {0, 0}, {0, 0}}));
}

TEST(DatasetSplit, AoetronV1KeepsTheLegacyRule) {
  const SampleOrder v1 = SampleOrder::kAoetronV1;
  // 10/3 rounds to 3 three times: the boundaries move up by the missing 1.
  auto r = ComputeSplitRanges({1, 1, 1}, 10, v1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (Ranges{{0, 4}, {4, 7}, {7, 10}}));
  // 949,50,1 of 1189: sizes 1128 + 59 + 1 = 1188, one short, so every boundary moves up by 1.
  r = ComputeSplitRanges({949, 50, 1}, 1189, v1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (Ranges{{0, 1129}, {1129, 1188}, {1188, 1189}}));
  EXPECT_FALSE(ComputeSplitRanges({0, 0}, 10).ok());
  EXPECT_FALSE(ComputeSplitRanges({1, -1}, 10).ok());
  EXPECT_FALSE(SplitIndexOf("training").ok());
}

TEST(Blending, FollowsTheLargestSamplingError) {
  auto b = BuildBlendingIndex({0.75, 0.25}, 6);
  ASSERT_TRUE(b.ok());
  // By hand: errors w·max(i,1) − taken; ties go to the first dataset.
  EXPECT_EQ(b->dataset_index, (std::vector<int16_t>{0, 1, 0, 0, 0, 1}));
  EXPECT_EQ(b->dataset_sample_index, (std::vector<int64_t>{0, 0, 1, 2, 3, 1}));
  auto big = BuildBlendingIndex({0.5, 0.3, 0.2}, 10000);
  ASSERT_TRUE(big.ok());
  EXPECT_NEAR(big->samples_per_dataset[0], 5000, 1);
  EXPECT_NEAR(big->samples_per_dataset[1], 3000, 1);
  EXPECT_NEAR(big->samples_per_dataset[2], 2000, 1);
  // Every prefix stays within one sample of its share.
  std::vector<int64_t> taken(3, 0);
  for (int i = 0; i < 10000; ++i) {
    ++taken[big->dataset_index[i]];
    EXPECT_LE(std::abs(taken[0] - 0.5 * (i + 1)), 1.0);
  }
  EXPECT_FALSE(BuildBlendingIndex({}, 5).ok());
  EXPECT_FALSE(BuildBlendingIndex({0, 0}, 5).ok());
}

// Weights 50,30,20: at sample 10 every error is an exact 0 (0.5·10 − 5, 0.3·10 − 3, 0.2·10 − 2
// with the products rounded first), so the tie goes to dataset 0 and its sample 5, as in
// Megatron-Core. Fused into FMAs, the errors come out as rounding noise and dataset 2 won.
TEST(Blending, ExactTiesGoToTheLowestDataset) {
  auto b = BuildBlendingIndex(MegatronNormalize(MegatronNormalize({50, 30, 20})), 11);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->dataset_index[10], 0);
  EXPECT_EQ(b->dataset_sample_index[10], 5);
}

// ceil(ceil(N·w)·1.005) by hand: N 1000, weights 1,2 → w 1/3, 2/3; ceil(333.33) = 334 →
// ceil(335.67) = 336; ceil(666.67) = 667 → ceil(670.335) = 671. The blend has 334 + 667 = 1001.
TEST(Blending, MegatronCoreAsksEachDatasetForItsShareAndAHalfPercent) {
  const std::vector<BlendRequest> r = MegatronBlendRequests(MegatronNormalize({1, 2}), 1000);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].target, 334);
  EXPECT_EQ(r[0].build, 336);
  EXPECT_EQ(r[1].target, 667);
  EXPECT_EQ(r[1].build, 671);
}

}  // namespace
}  // namespace aoetron::data
