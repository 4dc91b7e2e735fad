// Megatron .bin/.idx files written byte by byte from the documented layout (mmidx_format.h,
// megatron/core/datasets/indexed_dataset.py), independent of our writer: what Megatron-LM's
// preprocess_data.py would write, including sentence-split documents (several sequences per
// document), which our writer never produces.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace aoetron::data::testing {

struct MegatronFixture {
  uint8_t dtype_code = 8;                       // uint16
  std::vector<std::vector<int64_t>> sequences;  // token ids per sequence
  std::vector<int64_t> document_indices;        // 0, ..., number of sequences

  std::string IdxBytes() const;
  std::string BinBytes() const;
  // Writes <prefix>.idx and <prefix>.bin.
  void Write(const std::string& prefix) const;
};

// Two documents: the first of two sentences, the second of one; uint16 tokens.
MegatronFixture SmallMegatronFixture();

}  // namespace aoetron::data::testing
