// Megatron .bin/.idx: files laid out by hand load unchanged; our writer's files match the layout
// byte for byte; every kind of damage gives an error naming the file and byte offset.
#include "data/indexed_dataset.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "data/dataset_verify.h"
#include "data/indexed_dataset_writer.h"
#include "data/sharded_dataset.h"
#include "data/string_view_compat.h"
#include "data/tokenizer_files.h"
#include "tests/data/megatron_fixture.h"
#include "tests/data/test_paths.h"

namespace aoetron::data {
namespace {

using testing::MegatronFixture;

std::vector<int32_t> Tokens(const IndexedDataset& ds, int64_t s) {
  std::vector<int32_t> out(ds.sequence_length(s));
  ds.ReadTokens(s, 0, ds.sequence_length(s), out.data());
  return out;
}

// Expects `status` to fail and its message to contain every fragment.
void ExpectError(const absl::Status& status, std::vector<std::string> fragments) {
  ASSERT_FALSE(status.ok()) << "expected an error mentioning " << fragments[0];
  for (const std::string& f : fragments) {
    EXPECT_NE(ToStd(status.message()).find(f), std::string::npos)
        << "message: " << status.message() << "\nmissing: " << f;
  }
}

TEST(IndexedDataset, LoadsMegatronFilesLaidOutByHand) {
  const std::string dir = testing::MakeTempDir();
  MegatronFixture f = testing::SmallMegatronFixture();
  f.Write(dir + "/megatron");
  auto ds = IndexedDataset::Open(dir + "/megatron");
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ((*ds)->num_sequences(), 3);
  EXPECT_EQ((*ds)->num_documents(), 2);
  EXPECT_EQ((*ds)->num_tokens(), 10);
  EXPECT_EQ((*ds)->document_index(1), 2);
  EXPECT_EQ(Tokens(**ds, 0), (std::vector<int32_t>{15496, 11, 995}));
  EXPECT_EQ(Tokens(**ds, 2), (std::vector<int32_t>{7, 65535, 0, 42}));
  std::vector<int32_t> middle(2);
  (*ds)->ReadTokens(1, 1, 2, middle.data());
  EXPECT_EQ(middle, (std::vector<int32_t>{1101, 50256}));
  // The same files as a (plain, manifest-less) ShardedDataset.
  auto sharded = ShardedDataset::Open(dir + "/megatron");
  ASSERT_TRUE(sharded.ok()) << sharded.status();
  EXPECT_EQ((*sharded)->num_sequences(), 3);
  EXPECT_EQ((*sharded)->vocab_size(), 0);
  EXPECT_TRUE(VerifyDataset(dir + "/megatron", 65536).ok());
}

TEST(IndexedDataset, ReadsEveryIntegerDtype) {
  const std::string dir = testing::MakeTempDir();
  for (uint8_t code : {1, 2, 3, 4, 5, 8}) {
    MegatronFixture f;
    f.dtype_code = code;
    f.sequences = {{1, 2, 3}, {code == 2 ? -5 : 100, 7}};
    f.document_indices = {0, 1, 2};
    const std::string prefix = dir + "/d" + std::to_string(code);
    f.Write(prefix);
    auto ds = IndexedDataset::Open(prefix);
    ASSERT_TRUE(ds.ok()) << ds.status();
    EXPECT_EQ(Tokens(**ds, 1), (std::vector<int32_t>{code == 2 ? -5 : 100, 7})) << int{code};
  }
}

TEST(IndexedDatasetWriter, WritesExactlyTheMegatronLayout) {
  const std::string dir = testing::MakeTempDir();
  for (TokenDType dtype : {TokenDType::kUInt16, TokenDType::kInt32}) {
    auto writer = IndexedDatasetWriter::Create(dir + "/ours", dtype);
    ASSERT_TRUE(writer.ok()) << writer.status();
    std::vector<std::vector<int32_t>> docs = {{15496, 995, 50256}, {42}, {1, 2, 3, 4, 50256}};
    for (const auto& d : docs) ASSERT_TRUE((*writer)->AddDocument(d).ok());
    ASSERT_TRUE((*writer)->Finish().ok());
    MegatronFixture expected;
    expected.dtype_code = static_cast<uint8_t>(dtype);
    for (const auto& d : docs) expected.sequences.emplace_back(d.begin(), d.end());
    expected.document_indices = {0, 1, 2, 3};
    EXPECT_EQ(*ReadFileToString(dir + "/ours.idx"), expected.IdxBytes());
    EXPECT_EQ(*ReadFileToString(dir + "/ours.bin"), expected.BinBytes());
    EXPECT_FALSE(std::filesystem::exists(dir + "/ours.bin.tmp"));
  }
}

// Megatron's own reading code (its _IndexReader logic, in numpy) reads what our writer wrote.
TEST(IndexedDatasetWriter, MegatronsReaderReadsOurFiles) {
  const char* python = std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  if (std::system((std::string(python) + " -c 'import numpy' > /dev/null 2>&1").c_str()) != 0) {
    GTEST_SKIP() << "python3 with numpy not found (scripts/setup.sh installs python3-numpy)";
  }
  const std::string dir = testing::MakeTempDir();
  const std::vector<std::vector<int32_t>> docs = {{15496, 995, 50256}, {42}, {1, 65000, 7}};
  for (TokenDType dtype : {TokenDType::kUInt16, TokenDType::kInt32}) {
    auto writer = IndexedDatasetWriter::Create(dir + "/ours", dtype);
    ASSERT_TRUE(writer.ok());
    for (const auto& d : docs) ASSERT_TRUE((*writer)->AddDocument(d).ok());
    ASSERT_TRUE((*writer)->Finish().ok());
    const std::string command = std::string(python) + " " + testing::RepoRoot() +
                                "/tests/data/megatron_reader.py " + dir + "/ours > " + dir +
                                "/read.txt";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    const std::string expected = std::string("dtype ") +
                                 (dtype == TokenDType::kUInt16 ? "uint16" : "int32") +
                                 "\ndocuments 0 1 2 3\n3 15496 995 50256\n1 42\n3 1 65000 7\n";
    EXPECT_EQ(*ReadFileToString(dir + "/read.txt"), expected);
  }
}

TEST(IndexedDatasetWriter, RejectsTokensThatDoNotFitTheDtype) {
  const std::string dir = testing::MakeTempDir();
  auto writer = IndexedDatasetWriter::Create(dir + "/w", TokenDType::kUInt16);
  ASSERT_TRUE(writer.ok());
  ExpectError((*writer)->AddDocument(std::vector<int32_t>{1, 70000}),
              {"document 0", "position 1", "70000", "uint16"});
}

class DamagedDatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    prefix_ = dir_ + "/damaged";
    fixture_ = testing::SmallMegatronFixture();
    idx_ = fixture_.IdxBytes();
    bin_ = fixture_.BinBytes();
  }
  absl::Status Open() {
    testing::WriteFile(prefix_ + ".idx", idx_);
    testing::WriteFile(prefix_ + ".bin", bin_);
    return IndexedDataset::Open(prefix_).status();
  }
  template <typename T>
  void Poke(size_t offset, T value) {
    std::memcpy(&idx_[offset], &value, sizeof(T));
  }
  std::string dir_, prefix_, idx_, bin_;
  MegatronFixture fixture_;
};

TEST_F(DamagedDatasetTest, TruncatedBin) {
  bin_.resize(bin_.size() - 3);
  ExpectError(Open(), {"damaged.bin", "byte offset 17", "truncated", "says 20"});
}

TEST_F(DamagedDatasetTest, BinLongerThanTheIdxSays) {
  bin_ += "xx";
  ExpectError(Open(), {"damaged.bin", "byte offset 20", "too long"});
}

TEST_F(DamagedDatasetTest, TruncatedIdx) {
  idx_.resize(idx_.size() - 1);
  ExpectError(Open(), {"damaged.idx", "truncated", "byte offset " + std::to_string(idx_.size())});
  idx_.resize(20);
  ExpectError(Open(), {"damaged.idx", "truncated header"});
  idx_.clear();
  ExpectError(Open(), {"damaged.idx", "byte offset 0"});
}

TEST_F(DamagedDatasetTest, BadMagicVersionAndDtype) {
  std::string good = idx_;
  idx_[0] = 'X';
  ExpectError(Open(), {"damaged.idx", "byte offset 0", "magic"});
  idx_ = good;
  Poke<uint64_t>(9, 2);
  ExpectError(Open(), {"damaged.idx", "byte offset 9", "version 2"});
  idx_ = good;
  idx_[17] = 7;
  ExpectError(Open(), {"damaged.idx", "byte offset 17", "float32"});
}

TEST_F(DamagedDatasetTest, IdxDisagreesWithItself) {
  std::string good = idx_;
  // Sequence 1's pointer (at 34 + 4·3 + 8) must be 6 (3 uint16 tokens).
  Poke<int64_t>(34 + 12 + 8, 8);
  ExpectError(Open(), {"damaged.idx", "byte offset 54", "sequence 1 starts at .bin byte 8"});
  idx_ = good;
  Poke<int32_t>(34 + 4, -1);
  ExpectError(Open(), {"damaged.idx", "byte offset 38", "negative length"});
  idx_ = good;
  Poke<int64_t>(34 + 36 + 16, 2);  // last document index must be 3
  ExpectError(Open(), {"damaged.idx", "byte offset 86", "must equal the sequence count 3"});
  idx_ = good;
  Poke<int64_t>(34 + 36 + 8, 4);  // beyond the sequence count
  ExpectError(Open(), {"damaged.idx", "byte offset 78", "document index 1 is 4"});
  idx_ = good;
  Poke<uint64_t>(18, uint64_t{1} << 50);  // absurd count must not overflow size arithmetic
  ExpectError(Open(), {"damaged.idx", "byte offset 18"});
}

TEST_F(DamagedDatasetTest, TokenOutsideTheVocabularyAndEmptySequence) {
  ASSERT_TRUE(Open().ok());
  // Token 65535 is at sequence 2, position 1: byte 6 + 2 + 2·1 = 14... (sequence 2 starts at 12).
  ExpectError(VerifyDataset(prefix_, 50257).status(),
              {"damaged.bin", "byte offset 14", "token 65535", "[0, 50257)"});
  fixture_.sequences[1].clear();
  idx_ = fixture_.IdxBytes();
  bin_ = fixture_.BinBytes();
  ASSERT_TRUE(Open().ok());  // Megatron files may hold empty sequences; verify rejects them
  ExpectError(VerifyDataset(prefix_, 65536).status(), {"damaged.idx", "byte offset 38", "empty"});
}

TEST_F(DamagedDatasetTest, MissingFiles) {
  ExpectError(IndexedDataset::Open(dir_ + "/nothing").status(), {"nothing.idx", "no such file"});
  ExpectError(ShardedDataset::Open(dir_ + "/nothing").status(), {"nothing", "no dataset"});
}

}  // namespace
}  // namespace aoetron::data
