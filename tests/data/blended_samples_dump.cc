// blended_samples_dump: the samples data::BlendedGptDataset reads, for check_megatron_samples.py
// to compare with Megatron-Core's rules applied to the same files.
//
//   blended_samples_dump CACHE_DIR SPLIT SEQ_LENGTH NUM_SAMPLES SEED RATIOS COUNT W1 PREFIX1 ...
//
// RATIOS is "969,30,1"; with one dataset its weight is ignored (read directly, as Megatron-Core
// reads one unweighted prefix). Prints the blend's size, then the tokens of samples
// 0 .. COUNT−1, one sample a line.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "data/gpt_data_loader.h"

int main(int argc, char** argv) {
  if (argc < 10 || (argc - 8) % 2 != 0) {
    std::fprintf(stderr, "usage: see the header of tests/data/blended_samples_dump.cc\n");
    return 2;
  }
  aoetron::data::GptDataLoaderConfig config;
  config.cache_dir = argv[1];
  config.split = argv[2];
  config.seq_length = std::atoll(argv[3]);
  config.num_samples = std::atoll(argv[4]);
  config.seed = std::strtoull(argv[5], nullptr, 10);
  config.split_ratios.clear();
  for (const auto& part : absl::StrSplit(argv[6], ',')) {
    double ratio = 0;
    if (!absl::SimpleAtod(part, &ratio)) return 2;
    config.split_ratios.push_back(ratio);
  }
  const long count = std::atol(argv[7]);
  for (int i = 8; i + 1 < argc; i += 2) {
    config.datasets.push_back({argv[i + 1], std::strtod(argv[i], nullptr)});
  }
  auto blended = aoetron::data::BlendedGptDataset::Create(config);
  if (!blended.ok()) {
    std::fprintf(stderr, "blended_samples_dump: %s\n",
                 std::string(blended.status().message()).c_str());
    return 1;
  }
  std::printf("%lld\n", static_cast<long long>((*blended)->num_samples()));
  std::vector<int32_t> tokens(static_cast<size_t>(config.seq_length + 1));
  for (long i = 0; i < count; ++i) {
    if (absl::Status s = (*blended)->GetSample(i, tokens.data()); !s.ok()) return 1;
    for (size_t t = 0; t < tokens.size(); ++t) std::printf(t ? " %d" : "%d", tokens[t]);
    std::printf("\n");
  }
  return 0;
}
