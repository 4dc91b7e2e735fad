#include "data/gpt_sample_index.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "absl/strings/str_format.h"
#include "data/numpy_random.h"

namespace aoetron::data {

void DeterministicShuffle(std::vector<int64_t>* values, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (size_t i = values->size(); i > 1; --i) {
    // Uniform j in [0, i) by the multiply-shift method (no modulo bias worth noting, portable).
    const uint64_t j = static_cast<uint64_t>((static_cast<unsigned __int128>(rng()) * i) >> 64);
    std::swap((*values)[i - 1], (*values)[j]);
  }
}

namespace {

// The split's sequence ids, `copies` times over, epoch after epoch.
std::vector<int64_t> RepeatedIds(const std::vector<int64_t>& ids, int64_t copies) {
  std::vector<int64_t> repeated;
  repeated.reserve(ids.size() * static_cast<size_t>(copies));
  for (int64_t e = 0; e < copies; ++e) repeated.insert(repeated.end(), ids.begin(), ids.end());
  return repeated;
}

// Step 1 under kMegatronCore: Megatron-Core's _build_document_index.
std::vector<int64_t> MegatronDocumentIndex(const std::vector<int64_t>& ids, int64_t epochs,
                                           bool separate_last_epoch, NumpyRandomState* rng) {
  if (!separate_last_epoch || epochs == 1) {
    std::vector<int64_t> index = RepeatedIds(ids, epochs);
    rng->Shuffle(&index);
    return index;
  }
  std::vector<int64_t> index = MegatronDocumentIndex(ids, epochs - 1, false, rng);
  const std::vector<int64_t> last = MegatronDocumentIndex(ids, 1, false, rng);
  index.insert(index.end(), last.begin(), last.end());
  return index;
}

// Step 3 under kMegatronCore: Megatron-Core's _build_shuffle_index(first, total).
std::vector<int64_t> MegatronShuffleIndex(int64_t first, int64_t total, NumpyRandomState* rng) {
  std::vector<int64_t> index(static_cast<size_t>(first));
  std::iota(index.begin(), index.end(), int64_t{0});
  rng->Shuffle(&index);
  if (first == total) return index;
  std::vector<int64_t> rest(static_cast<size_t>(total - first));
  std::iota(rest.begin(), rest.end(), first);
  rng->Shuffle(&rest);
  index.insert(index.end(), rest.begin(), rest.end());
  return index;
}

// Step 1 under kAoetronV1: one shuffled copy per epoch.
std::vector<int64_t> LegacyDocumentIndex(const std::vector<int64_t>& ids, int64_t epochs,
                                         uint64_t seed) {
  std::vector<int64_t> index;
  index.reserve(ids.size() * static_cast<size_t>(epochs));
  std::vector<int64_t> order(ids.size());
  for (int64_t e = 0; e < epochs; ++e) {
    std::iota(order.begin(), order.end(), int64_t{0});
    DeterministicShuffle(&order, seed * 0x9E3779B97F4A7C15ull + 2 * e + 1);
    for (int64_t i : order) index.push_back(ids[static_cast<size_t>(i)]);
  }
  return index;
}

// Step 3 under kAoetronV1: samples shuffled within the epoch they start in.
std::vector<int64_t> LegacyShuffleIndex(const std::vector<int64_t>& sample_doc_position,
                                        int64_t total_samples, int64_t epochs, int64_t docs,
                                        uint64_t seed) {
  std::vector<int64_t> index(static_cast<size_t>(total_samples));
  int64_t begin = 0;
  for (int64_t e = 0; e < epochs && begin < total_samples; ++e) {
    int64_t end = begin;
    while (end < total_samples && sample_doc_position[end] < (e + 1) * docs) ++end;
    if (e == epochs - 1) end = total_samples;
    std::vector<int64_t> block(static_cast<size_t>(end - begin));
    std::iota(block.begin(), block.end(), begin);
    DeterministicShuffle(&block, seed * 0xD1B54A32D192ED03ull + 2 * e + 1);
    std::copy(block.begin(), block.end(), index.begin() + begin);
    begin = end;
  }
  return index;
}

// Step 2: Megatron's build_sample_idx over the document index.
void BuildSampleWindows(const std::vector<int64_t>& document_index,
                        const std::vector<int32_t>& length_of_id, int64_t first_id,
                        int64_t total_samples, GptSampleIndex* index) {
  const int64_t L = index->seq_length;
  index->sample_doc_position.resize(static_cast<size_t>(total_samples + 1));
  index->sample_offset.resize(static_cast<size_t>(total_samples + 1));
  int64_t position = 0;
  int64_t offset = 0;
  index->sample_doc_position[0] = 0;
  index->sample_offset[0] = 0;
  for (int64_t s = 1; s <= total_samples; ++s) {
    int64_t remaining = L + 1;
    while (remaining > 0) {
      const int64_t left = length_of_id[document_index[position] - first_id] - offset;
      if (left >= remaining) {
        offset += remaining - 1;
        remaining = 0;
      } else {
        remaining -= left;
        ++position;
        offset = 0;
      }
    }
    index->sample_doc_position[s] = position;
    index->sample_offset[s] = static_cast<int32_t>(offset);
  }
}

}  // namespace

absl::StatusOr<GptSampleIndex> BuildGptSampleIndex(const GptSampleIndexRequest& request) {
  const int64_t L = request.seq_length;
  if (L < 1) return absl::InvalidArgumentError(absl::StrFormat("seq_length %d < 1", L));
  if (request.sequence_ids.size() != request.sequence_lengths.size()) {
    return absl::InvalidArgumentError("sequence_ids and sequence_lengths differ in size");
  }
  if (request.num_samples < 0) return absl::InvalidArgumentError("num_samples < 0");
  if (request.order == SampleOrder::kMegatronCore && request.seed > 0xffffffffull) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "seed %d is not below 2^32, which numpy's RandomState (Megatron-Core's sample order) "
        "requires",
        request.seed));
  }
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
  // Lengths by sequence id: ids are consecutive in every caller, but need not start at 0.
  int64_t first_id = request.sequence_ids.empty() ? 0 : request.sequence_ids.front();
  int64_t last_id = first_id;
  for (int64_t id : request.sequence_ids) {
    first_id = std::min(first_id, id);
    last_id = std::max(last_id, id);
  }
  std::vector<int32_t> length_of_id(static_cast<size_t>(last_id - first_id + 1), 0);
  for (size_t i = 0; i < request.sequence_ids.size(); ++i) {
    length_of_id[request.sequence_ids[i] - first_id] = request.sequence_lengths[i];
  }

  if (request.order == SampleOrder::kAoetronV1) {
    index.document_index = LegacyDocumentIndex(request.sequence_ids, epochs, request.seed);
    BuildSampleWindows(index.document_index, length_of_id, first_id, total_samples, &index);
    index.shuffle_index =
        LegacyShuffleIndex(index.sample_doc_position, total_samples, epochs,
                           static_cast<int64_t>(request.sequence_ids.size()), request.seed);
    return index;
  }

  // Megatron-Core: the separate-last-epoch rule (see the header), then one RandomState for the
  // document index and the shuffle index, in that order.
  int64_t samples_before_last = 0;
  if (epochs > 1) {
    samples_before_last = ((epochs - 1) * tokens_per_epoch - 1) / L;
    const int64_t samples_from_last = request.num_samples - samples_before_last;
    const int64_t samples_per_epoch = (tokens_per_epoch - 1) / L;
    index.separate_last_epoch =
        samples_from_last < static_cast<int64_t>(0.80 * static_cast<double>(samples_per_epoch));
  }
  NumpyRandomState rng(static_cast<uint32_t>(request.seed));
  index.document_index =
      MegatronDocumentIndex(request.sequence_ids, epochs, index.separate_last_epoch, &rng);
  BuildSampleWindows(index.document_index, length_of_id, first_id, total_samples, &index);
  index.shuffle_index = MegatronShuffleIndex(
      index.separate_last_epoch ? samples_before_last : total_samples, total_samples, &rng);
  return index;
}

}  // namespace aoetron::data
