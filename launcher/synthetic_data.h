// SyntheticBigramSource: learnable synthetic tokens that need no files (quick runs, benches).
//
// A fixed random bigram chain: every token v has `branching` successors, drawn once from the
// seed (duplicates allowed); a sample starts at a uniformly random token and each next token is
// one of the current token's successors, uniformly. A model that has learnt the table predicts
// the next token with cross-entropy ≈ ln(branching) (a little less where successors repeat),
// against ln(vocab_size) at initialisation, so the loss visibly falls within a few hundred
// steps. Uniform noise would keep the loss at ln(vocab_size) forever.
//
// The table depends on (seed, vocab_size, branching) only; `split` selects independent samples
// from the same chain, so the evaluation stream is held out but comes from the same process.
#pragma once

#include <cstdint>
#include <vector>

#include "launcher/batch_source.h"

namespace aoetron {

enum class DataSplit { kTrain, kEval };

class SyntheticBigramSource : public TokenBatchSource {
 public:
  SyntheticBigramSource(int64_t vocab_size, int64_t branching, uint64_t seed, DataSplit split);

  void FillBatch(int64_t index, Tensor& tokens, Tensor& targets) const override;

  // The successors of `token` (for tests).
  const int32_t* successors(int32_t token) const { return &successors_[token * branching_]; }
  int64_t branching() const { return branching_; }

 private:
  int64_t vocab_size_;
  int64_t branching_;
  uint64_t seed_;
  uint64_t sample_stream_;
  std::vector<int32_t> successors_;  // [vocab_size, branching]
};

}  // namespace aoetron
