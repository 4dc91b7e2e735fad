#include "data/numpy_random.h"

namespace aoetron::data {

uint64_t NumpyRandomState::Interval(uint64_t max) {
  if (max == 0) return 0;
  uint64_t mask = max;
  for (int shift = 1; shift <= 32; shift *= 2) mask |= mask >> shift;
  uint64_t value = 0;
  if (max <= 0xffffffffull) {
    do {
      value = NextUint32() & mask;
    } while (value > max);
  } else {
    do {
      value = NextUint64() & mask;
    } while (value > max);
  }
  return value;
}

}  // namespace aoetron::data
