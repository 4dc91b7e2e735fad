#include "data/gpt_sample_index.h"

#include <random>

#include "absl/strings/str_format.h"

namespace aoetron::data {

void DeterministicShuffle(std::vector<int64_t>* values, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (size_t i = values->size(); i > 1; --i) {
    // Uniform j in [0, i) by the multiply-shift method (no modulo bias worth noting, portable).
    const uint64_t j = static_cast<uint64_t>((static_cast<unsigned __int128>(rng()) * i) >> 64);
    std::swap((*values)[i - 1], (*values)[j]);
  }
}

absl::StatusOr<GptSampleIndex> BuildGptSampleIndex(const GptSampleIndexRequest& request) {
  const int64_t L = request.seq_length;
  if (L < 1) return absl::InvalidArgumentError(absl::StrFormat("seq_length %d < 1", L));
  if (request.sequence_ids.size() != request.sequence_lengths.size()) {
    return absl::InvalidArgumentError("sequence_ids and sequence_lengths differ in size");
  }
  if (request.num_samples < 0) return absl::InvalidArgumentError("num_samples < 0");
  int64_t tokens_per_epoch = 0;
  for (int32_t length : request.sequence_lengths) tokens_per_epoch += length;
  if (tokens_per_epoch == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the split has no tokens (%d sequences)", request.sequence_ids.size()));
  }
  GptSampleIndex index;
  index.seq_length = L;
  // Epochs: enough for num_samples·L + 1 tokens (the +1: the last sample's last target).
  int64_t epochs = 1;
  if (request.num_samples > 0) {
    const int64_t needed = request.num_samples * L + 1;
    epochs = (needed + tokens_per_epoch - 1) / tokens_per_epoch;
  }
  index.num_epochs = epochs;
  const int64_t total_samples = (epochs * tokens_per_epoch - 1) / L;
  if (total_samples < 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the split has %d tokens, fewer than one sample of %d + 1 tokens", tokens_per_epoch, L));
  }

  // 1. Document index, one shuffled copy per epoch.
  const int64_t docs = static_cast<int64_t>(request.sequence_ids.size());
  index.document_index.reserve(static_cast<size_t>(epochs * docs));
  std::vector<int32_t> length_at;  // length of the sequence at each document_index position
  length_at.reserve(static_cast<size_t>(epochs * docs));
  std::vector<int64_t> order(static_cast<size_t>(docs));
  for (int64_t e = 0; e < epochs; ++e) {
    for (int64_t i = 0; i < docs; ++i) order[i] = i;
    DeterministicShuffle(&order, request.seed * 0x9E3779B97F4A7C15ull + 2 * e + 1);
    for (int64_t i : order) {
      index.document_index.push_back(request.sequence_ids[i]);
      length_at.push_back(request.sequence_lengths[i]);
    }
  }

  // 2. Sample index.
  index.sample_doc_position.resize(static_cast<size_t>(total_samples + 1));
  index.sample_offset.resize(static_cast<size_t>(total_samples + 1));
  int64_t position = 0;
  int64_t offset = 0;
  index.sample_doc_position[0] = 0;
  index.sample_offset[0] = 0;
  for (int64_t s = 1; s <= total_samples; ++s) {
    int64_t remaining = L + 1;
    while (remaining > 0) {
      const int64_t left = length_at[position] - offset;
      if (left >= remaining) {
        offset += remaining - 1;
        remaining = 0;
      } else {
        remaining -= left;
        ++position;
        offset = 0;
      }
    }
    index.sample_doc_position[s] = position;
    index.sample_offset[s] = static_cast<int32_t>(offset);
  }

  // 3. Shuffle index, within each epoch's samples.
  index.shuffle_index.resize(static_cast<size_t>(total_samples));
  int64_t begin = 0;
  for (int64_t e = 0; e < epochs && begin < total_samples; ++e) {
    int64_t end = begin;
    while (end < total_samples && index.sample_doc_position[end] < (e + 1) * docs) ++end;
    if (e == epochs - 1) end = total_samples;
    std::vector<int64_t> block(static_cast<size_t>(end - begin));
    for (int64_t i = 0; i < end - begin; ++i) block[i] = begin + i;
    DeterministicShuffle(&block, request.seed * 0xD1B54A32D192ED03ull + 2 * e + 1);
    std::copy(block.begin(), block.end(), index.shuffle_index.begin() + begin);
    begin = end;
  }
  return index;
}

}  // namespace aoetron::data
