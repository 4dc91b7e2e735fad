// NumpyRandomState: numpy's legacy generator, numpy.random.RandomState(seed) for an integer seed,
// as far as Megatron-Core's dataset code uses it — the raw MT19937 stream and
// RandomState.shuffle of a 1-D array — so that sample orders built here equal Megatron's.
//
// numpy (numpy/random/_mt19937.pyx, mtrand.pyx, src/distributions):
//   - RandomState(seed), 0 ≤ seed < 2³²: MT19937 initialised by init_genrand(seed), the
//     reference initialisation, which std::mt19937(seed) performs; the outputs are the reference
//     tempered 32-bit words, which std::mt19937 is required to produce.
//   - random_interval(max), uniform in [0, max]: mask = the smallest 2^k − 1 ≥ max; draw
//     (32-bit words while max < 2³², else 64-bit ones: two words, the first the high half) and
//     keep the first draw ≤ max after masking.
//   - shuffle(x) of n elements: for i = n−1 down to 1, j = random_interval(i), swap x[i], x[j].
// Tested against numpy itself (tests/data/check_numpy_random.py, fresh seeds every run).
// Thread safety: one object per thread.
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace aoetron::data {

class NumpyRandomState {
 public:
  // numpy.random.RandomState(seed).
  explicit NumpyRandomState(uint32_t seed) : engine_(seed) {}

  // The next word of the MT19937 stream (numpy's next_uint32).
  uint32_t NextUint32() { return static_cast<uint32_t>(engine_()); }

  // Two words, the first the high half (numpy's mt19937_next64).
  uint64_t NextUint64() {
    const uint64_t high = NextUint32();
    return high << 32 | NextUint32();
  }

  // numpy's random_interval: uniform in [0, max] by masked rejection.
  uint64_t Interval(uint64_t max);

  // numpy's RandomState.shuffle of a 1-D array, in place.
  template <typename T>
  void Shuffle(std::vector<T>* values) {
    for (size_t i = values->size(); i-- > 1;) {
      std::swap((*values)[i], (*values)[static_cast<size_t>(Interval(i))]);
    }
  }

 private:
  std::mt19937 engine_;
};

}  // namespace aoetron::data
