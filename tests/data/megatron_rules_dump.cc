// megatron_rules_dump: what this project's Megatron-Core rules compute, one question per run, for
// check_megatron_rules.py to compare with numpy and with those rules written out in Python.
//
//   megatron_rules_dump sum V...                 numpy.sum
//   megatron_rules_dump normalize V...           Megatron-Core's normalize
//   megatron_rules_dump split N R...             split ranges of N sequences ("begin end" each)
//   megatron_rules_dump requests N W...          per dataset "target build" of a blend of N
//   megatron_rules_dump blend SIZE W...          the blending index: dataset ids, then sample ids
//   megatron_rules_dump index SEED L N LEN...    a sample index: "epochs separate", then the
//                                                document, sample-position, sample-offset and
//                                                shuffle indices, a line each
// Doubles print with 17 significant digits (round-trip exact).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "data/blending.h"
#include "data/dataset_split.h"
#include "data/gpt_sample_index.h"
#include "data/numpy_sum.h"

namespace {

using namespace aoetron::data;

std::vector<double> Doubles(int argc, char** argv, int first) {
  std::vector<double> values;
  for (int i = first; i < argc; ++i) values.push_back(std::strtod(argv[i], nullptr));
  return values;
}

template <typename T>
void PrintLine(const std::vector<T>& values) {
  for (size_t i = 0; i < values.size(); ++i) {
    std::printf(i ? " %lld" : "%lld", static_cast<long long>(values[i]));
  }
  std::printf("\n");
}

void PrintDoubles(const std::vector<double>& values) {
  for (size_t i = 0; i < values.size(); ++i) std::printf(i ? " %.17g" : "%.17g", values[i]);
  std::printf("\n");
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "megatron_rules_dump: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return Fail("usage: see the header of tests/data/megatron_rules_dump.cc");
  const std::string what = argv[1];
  if (what == "sum") {
    PrintDoubles({NumpySum(Doubles(argc, argv, 2))});
  } else if (what == "normalize") {
    PrintDoubles(MegatronNormalize(Doubles(argc, argv, 2)));
  } else if (what == "split") {
    auto ranges = ComputeSplitRanges(Doubles(argc, argv, 3), std::atoll(argv[2]));
    if (!ranges.ok()) return Fail(std::string(ranges.status().message()));
    for (const auto& [begin, end] : *ranges)
      std::printf("%lld %lld\n", (long long)begin, (long long)end);
  } else if (what == "requests") {
    for (const BlendRequest& r :
         MegatronBlendRequests(MegatronNormalize(Doubles(argc, argv, 3)), std::atoll(argv[2]))) {
      std::printf("%lld %lld\n", static_cast<long long>(r.target), static_cast<long long>(r.build));
    }
  } else if (what == "blend") {
    auto index = BuildBlendingIndex(MegatronNormalize(MegatronNormalize(Doubles(argc, argv, 3))),
                                    std::atoll(argv[2]));
    if (!index.ok()) return Fail(std::string(index.status().message()));
    PrintLine(index->dataset_index);
    PrintLine(index->dataset_sample_index);
  } else if (what == "index") {
    if (argc < 6) return Fail("index SEED L N LEN...");
    GptSampleIndexRequest request;
    request.seed = std::strtoull(argv[2], nullptr, 10);
    request.seq_length = std::atoll(argv[3]);
    request.num_samples = std::atoll(argv[4]);
    for (int i = 5; i < argc; ++i) {
      request.sequence_ids.push_back(i - 5);
      request.sequence_lengths.push_back(std::atoi(argv[i]));
    }
    auto index = BuildGptSampleIndex(request);
    if (!index.ok()) return Fail(std::string(index.status().message()));
    std::printf("%lld %d\n", static_cast<long long>(index->num_epochs),
                index->separate_last_epoch ? 1 : 0);
    PrintLine(index->document_index);
    PrintLine(index->sample_doc_position);
    PrintLine(index->sample_offset);
    PrintLine(index->shuffle_index);
  } else {
    return Fail("unknown question " + what);
  }
  return 0;
}
