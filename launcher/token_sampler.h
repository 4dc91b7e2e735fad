// Picking the next token from a row of logits (aoetron-generate): greedy, or temperature with
// optional top-k and top-p (nucleus) truncation, drawn with a counter-based random number so that
// a seed fixes the whole sample, whatever the layout, the thread count or the machine.
//
//   temperature 0        argmax (ties: the lowest id)
//   otherwise            p ∝ exp((l − max l) / temperature) over the candidates, where the
//                        candidates are the top_k largest logits (0: all; ties: lower id first),
//                        then cut to the smallest prefix, in decreasing probability, whose mass
//                        reaches top_p (1: no cut); u = UniformAt(seed, "sample", step) picks the
//                        first candidate whose cumulative probability exceeds u · total.
// Sums run in double in candidate order.
#pragma once

#include <cstdint>
#include <span>

namespace aoetron {

struct SamplingOptions {
  double temperature = 1.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 1;
};

// logits: one row of the vocabulary; step: the index of the token being drawn (its random number).
int32_t SampleToken(std::span<const float> logits, const SamplingOptions& options, int64_t step);

}  // namespace aoetron
