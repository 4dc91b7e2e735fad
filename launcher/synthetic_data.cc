#include "launcher/synthetic_data.h"

#include "core/check.h"
#include "core/rng.h"

namespace aoetron {

SyntheticBigramSource::SyntheticBigramSource(int64_t vocab_size, int64_t branching, uint64_t seed,
                                             DataSplit split)
    : vocab_size_(vocab_size),
      branching_(branching),
      seed_(seed),
      sample_stream_(StableHash(split == DataSplit::kTrain ? "synthetic.train" : "synthetic.eval")),
      successors_(static_cast<size_t>(vocab_size * branching)) {
  AOETRON_CHECK(vocab_size >= 1 && branching >= 1 && branching <= vocab_size)
      << "SyntheticBigramSource: vocab " << vocab_size << ", branching " << branching;
  const uint64_t table_stream = StableHash("synthetic.table");
  for (size_t i = 0; i < successors_.size(); ++i) {
    successors_[i] = static_cast<int32_t>(
        UniformIntAt(seed, table_stream, i, static_cast<uint64_t>(vocab_size)));
  }
}

void SyntheticBigramSource::FillBatch(int64_t index, Tensor& tokens, Tensor& targets) const {
  AOETRON_CHECK(tokens.rank() == 2 && tokens.shape() == targets.shape())
      << "FillBatch: tokens " << tokens.DebugString() << ", targets " << targets.DebugString();
  const int64_t batch = tokens.dim(0), seq = tokens.dim(1);
  int32_t* token_out = tokens.data<int32_t>();
  int32_t* target_out = targets.data<int32_t>();
  for (int64_t b = 0; b < batch; ++b) {
    // Sample j draws its T + 1 random numbers at counters j·(T+1) … j·(T+1) + T.
    const uint64_t first = static_cast<uint64_t>((index * batch + b) * (seq + 1));
    int32_t current = static_cast<int32_t>(
        UniformIntAt(seed_, sample_stream_, first, static_cast<uint64_t>(vocab_size_)));
    for (int64_t t = 0; t < seq; ++t) {
      const uint64_t choice =
          UniformIntAt(seed_, sample_stream_, first + 1 + t, static_cast<uint64_t>(branching_));
      const int32_t next = successors_[current * branching_ + static_cast<int64_t>(choice)];
      token_out[b * seq + t] = current;
      target_out[b * seq + t] = next;
      current = next;
    }
  }
}

}  // namespace aoetron
