// numpy_random_dump: what NumpyRandomState (data/numpy_random.h) draws, for
// check_numpy_random.py to compare with numpy itself.
//
//   numpy_random_dump SEED WORDS N1 [N2 ...]
//
// Prints, from one NumpyRandomState(SEED): WORDS raw 32-bit words on one line; then, drawing on
// from the same state, for each N the shuffle of 0 .. N−1 on a line of its own (as Megatron
// shuffles its document index and then its sample index from one RandomState).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <vector>

#include "data/numpy_random.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s SEED WORDS N1 [N2 ...]\n", argv[0]);
    return 2;
  }
  aoetron::data::NumpyRandomState state(static_cast<uint32_t>(std::strtoull(argv[1], nullptr, 10)));
  const long words = std::strtol(argv[2], nullptr, 10);
  for (long i = 0; i < words; ++i) std::printf(i ? " %u" : "%u", state.NextUint32());
  std::printf("\n");
  for (int a = 3; a < argc; ++a) {
    std::vector<int64_t> values(static_cast<size_t>(std::strtoll(argv[a], nullptr, 10)));
    std::iota(values.begin(), values.end(), 0);
    state.Shuffle(&values);
    for (size_t i = 0; i < values.size(); ++i) {
      std::printf(i ? " %lld" : "%lld", static_cast<long long>(values[i]));
    }
    std::printf("\n");
  }
  return 0;
}
