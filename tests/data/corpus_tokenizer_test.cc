// Corpus -> sharded datasets: ids equal the tokenizer's plus <|endoftext|>, shards roll over at
// the size limit, output is identical for any thread count, and every kind of bad input (bad
// JSONL, non-UTF-8, empty document, missing input) fails with the file and line or offset —
// through the library and through the aoetron-data program.
#include "data/corpus_tokenizer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "data/bpe_tokenizer.h"
#include "data/dataset_verify.h"
#include "data/sharded_dataset.h"
#include "data/string_view_compat.h"
#include "data/tokenizer_files.h"
#include "tests/data/test_paths.h"

namespace aoetron::data {
namespace {

class CorpusTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::Gpt2TokenizerDir().empty()) GTEST_SKIP() << testing::kFetchHint;
    auto t = BpeTokenizer::LoadFromDirectory(testing::Gpt2TokenizerDir());
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = *std::move(t);
    dir_ = testing::MakeTempDir();
    std::filesystem::create_directories(dir_ + "/corpus/sub");
    testing::WriteFile(dir_ + "/corpus/b.txt", "Second file.\nIt has two lines.\n");
    testing::WriteFile(dir_ + "/corpus/a.txt", "First file: héllo wörld 🌍!");
    testing::WriteFile(dir_ + "/corpus/sub/c.jsonl",
                       "{\"text\": \"json one\", \"id\": 1}\n\n"
                       "{\"meta\": {\"x\": [1, 2]}, \"text\": \"json \\\"two\\\"\\n\\u00e9\"}\n");
    testing::WriteFile(dir_ + "/corpus/.hidden.txt", "never read");
  }
  absl::StatusOr<TokenizeReport> Run(std::vector<std::string> inputs, const std::string& out,
                                     int threads = 1, int64_t shard_bytes = 1 << 20) {
    TokenizeOptions o;
    o.inputs = std::move(inputs);
    o.output_prefix = out;
    o.num_threads = threads;
    o.shard_bytes = shard_bytes;
    return TokenizeCorpus(*tokenizer_, o);
  }
  void ExpectError(const absl::Status& s, std::vector<std::string> fragments) {
    ASSERT_FALSE(s.ok());
    for (const auto& f : fragments) {
      EXPECT_NE(ToStd(s.message()).find(f), std::string::npos) << s.message() << " / " << f;
    }
  }
  std::unique_ptr<BpeTokenizer> tokenizer_;
  std::string dir_;
};

TEST_F(CorpusTokenizerTest, DocumentsInOrderEachEndingWithEndOfText) {
  auto report = Run({dir_ + "/corpus"}, dir_ + "/out/ds");
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->documents, 4);
  auto ds = ShardedDataset::Open(dir_ + "/out/ds");
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ((*ds)->vocab_size(), 50257);
  const std::vector<std::string> texts = {"First file: héllo wörld 🌍!",
                                          "Second file.\nIt has two lines.\n", "json one",
                                          "json \"two\"\né"};
  ASSERT_EQ((*ds)->num_sequences(), 4);
  for (int i = 0; i < 4; ++i) {
    std::vector<int32_t> expected = tokenizer_->Encode(texts[i]);
    expected.push_back(50256);
    std::vector<int32_t> got((*ds)->sequence_length(i));
    (*ds)->ReadTokens(i, 0, got.size(), got.data());
    EXPECT_EQ(got, expected) << texts[i];
  }
  EXPECT_TRUE(VerifyDataset(dir_ + "/out/ds", 0).ok());
}

TEST_F(CorpusTokenizerTest, ShardsAndThreadsDoNotChangeTheTokens) {
  // A long multi-line document so that it is cut into parts encoded in parallel.
  std::string big;
  for (int i = 0; i < 60000; ++i)
    big += "Line " + std::to_string(i) + " of the text, with words.\n";
  testing::WriteFile(dir_ + "/corpus/big.txt", big);
  ASSERT_TRUE(Run({dir_ + "/corpus"}, dir_ + "/one/ds", 1, int64_t{1} << 30).ok());
  auto report = Run({dir_ + "/corpus"}, dir_ + "/many/ds", 2, 1024);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->shards, 2);  // a.txt, b.txt and big.txt fill the first; c.jsonl the second
  auto one = ShardedDataset::Open(dir_ + "/one/ds");
  auto many = ShardedDataset::Open(dir_ + "/many/ds");
  ASSERT_TRUE(one.ok() && many.ok());
  ASSERT_EQ((*one)->num_sequences(), (*many)->num_sequences());
  for (int64_t s = 0; s < (*one)->num_sequences(); ++s) {
    std::vector<int32_t> a((*one)->sequence_length(s)), b((*many)->sequence_length(s));
    (*one)->ReadTokens(s, 0, a.size(), a.data());
    (*many)->ReadTokens(s, 0, b.size(), b.data());
    ASSERT_EQ(a, b);
  }
  // Cutting at SafeCuts gives the same ids as encoding whole.
  std::vector<int32_t> whole = tokenizer_->Encode(big);
  std::vector<int32_t> cut;
  std::vector<size_t> cuts = SafeCuts(big, 4096);
  EXPECT_GT(cuts.size(), 100u);
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    tokenizer_->Encode(std::string_view(big).substr(cuts[i], cuts[i + 1] - cuts[i]), &cut);
  }
  EXPECT_EQ(cut, whole);
}

TEST_F(CorpusTokenizerTest, MalformedJsonlLine) {
  testing::WriteFile(dir_ + "/bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"unterminated}\n");
  ExpectError(Run({dir_ + "/bad.jsonl"}, dir_ + "/o").status(),
              {"bad.jsonl: line 2", "malformed JSONL", "byte offset 23", "unterminated"});
  testing::WriteFile(dir_ + "/bad.jsonl", "{\"text\": 42}\n");
  ExpectError(Run({dir_ + "/bad.jsonl"}, dir_ + "/o").status(),
              {"bad.jsonl: line 1", "not a string"});
  testing::WriteFile(dir_ + "/bad.jsonl", "{\"body\": \"no text field\"}\n");
  ExpectError(Run({dir_ + "/bad.jsonl"}, dir_ + "/o").status(), {"bad.jsonl: line 1", "text"});
  testing::WriteFile(dir_ + "/bad.jsonl", "[1, 2]\n");
  ExpectError(Run({dir_ + "/bad.jsonl"}, dir_ + "/o").status(), {"line 1", "JSON object"});
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/o.manifest"));
}

TEST_F(CorpusTokenizerTest, NonUtf8TextFile) {
  testing::WriteFile(dir_ + "/latin1.txt", "caf\xe9 au lait");
  ExpectError(Run({dir_ + "/latin1.txt"}, dir_ + "/o").status(),
              {"latin1.txt: byte offset 3", "not valid UTF-8"});
  testing::WriteFile(dir_ + "/bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"x\xff\"}\n");
  ExpectError(Run({dir_ + "/bad.jsonl"}, dir_ + "/o").status(),
              {"bad.jsonl: line 2", "byte offset 26", "UTF-8"});
  // Allowed on request: the bytes are kept exactly.
  TokenizeOptions o;
  o.inputs = {dir_ + "/latin1.txt"};
  o.output_prefix = dir_ + "/raw";
  o.reader.allow_invalid_utf8 = true;
  ASSERT_TRUE(TokenizeCorpus(*tokenizer_, o).ok());
  auto ds = ShardedDataset::Open(dir_ + "/raw");
  std::vector<int32_t> ids((*ds)->sequence_length(0) - 1);
  (*ds)->ReadTokens(0, 0, ids.size(), ids.data());
  EXPECT_EQ(*tokenizer_->Decode(ids), "caf\xe9 au lait");
}

TEST_F(CorpusTokenizerTest, EmptyDocumentAndMissingInput) {
  testing::WriteFile(dir_ + "/empty.txt", "");
  ExpectError(Run({dir_ + "/empty.txt"}, dir_ + "/o").status(), {"empty.txt", "empty document"});
  testing::WriteFile(dir_ + "/e.jsonl", "{\"text\": \"a\"}\n{\"text\": \"\"}\n");
  ExpectError(Run({dir_ + "/e.jsonl"}, dir_ + "/o").status(), {"e.jsonl: line 2", "empty"});
  ExpectError(Run({dir_ + "/nope"}, dir_ + "/o").status(), {"nope", "no such file"});
  TokenizeOptions o;
  o.inputs = {dir_ + "/e.jsonl"};
  o.output_prefix = dir_ + "/skip";
  o.reader.skip_empty = true;
  auto report = TokenizeCorpus(*tokenizer_, o);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->documents, 1);
  EXPECT_EQ(report->skipped_empty, 1);
}

// The program: exit status and messages.
class AoetronDataToolTest : public CorpusTokenizerTest {
 protected:
  int RunTool(const std::string& args, std::string* output) {
    const char* tool = std::getenv("AOETRON_DATA_TOOL");
    if (tool == nullptr) tool = AOETRON_DATA_TOOL_PATH;
    const std::string log = dir_ + "/tool.log";
    const std::string command = std::string(tool) + " " + args + " > " + log + " 2>&1";
    const int status = std::system(command.c_str());
    *output = ReadFileToString(log).value_or("");
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
};

TEST_F(AoetronDataToolTest, TokenizeVerifyStatsAndErrors) {
  std::string out;
  ASSERT_EQ(RunTool("tokenize --tokenizer " + testing::Gpt2TokenizerDir() + " --output " + dir_ +
                        "/ds/c --threads 2 " + dir_ + "/corpus",
                    &out),
            0)
      << out;
  EXPECT_NE(out.find("tokenized 4 documents"), std::string::npos) << out;
  ASSERT_EQ(RunTool("verify " + dir_ + "/ds/c", &out), 0) << out;
  EXPECT_NE(out.find("OK "), std::string::npos);
  ASSERT_EQ(RunTool("stats " + dir_ + "/ds/c", &out), 0) << out;
  EXPECT_NE(out.find("bytes/token"), std::string::npos);
  // Damage: truncate the shard's .bin.
  const std::string bin = dir_ + "/ds/c_000000.bin";
  std::filesystem::resize_file(bin, std::filesystem::file_size(bin) - 2);
  EXPECT_EQ(RunTool("verify " + dir_ + "/ds/c", &out), 1);
  EXPECT_NE(out.find("c_000000.bin: byte offset"), std::string::npos) << out;
  EXPECT_NE(out.find("truncated"), std::string::npos) << out;
  // A token id >= vocab: verify a GPT-2 dataset against a smaller vocabulary.
  ASSERT_EQ(RunTool("tokenize --tokenizer " + testing::Gpt2TokenizerDir() + " --output " + dir_ +
                        "/ds/d " + dir_ + "/corpus/a.txt",
                    &out),
            0);
  EXPECT_EQ(RunTool("verify --vocab-size 1000 " + dir_ + "/ds/d_000000", &out), 1);
  EXPECT_NE(out.find("d_000000.bin: byte offset 0: token"), std::string::npos) << out;
  // Usage errors exit 2.
  EXPECT_EQ(RunTool("tokenize --output x", &out), 2);
  EXPECT_EQ(RunTool("frobnicate", &out), 2);
}

}  // namespace
}  // namespace aoetron::data
