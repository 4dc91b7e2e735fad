#include "data/gpt_dataset.h"

#include <filesystem>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "data/dataset_split.h"
#include "data/fingerprint.h"
#include "data/sample_index_cache.h"

namespace aoetron::data {

absl::StatusOr<std::unique_ptr<GptDataset>> GptDataset::Create(
    std::shared_ptr<const ShardedDataset> data, const GptDatasetOptions& options) {
  absl::StatusOr<int> split = SplitIndexOf(options.split);
  if (!split.ok()) return split.status();
  std::vector<double> ratios = options.split_ratios;
  ratios.resize(std::max<size_t>(ratios.size(), 3), 0.0);
  absl::StatusOr<std::vector<std::pair<int64_t, int64_t>>> ranges =
      ComputeSplitRanges(ratios, data->num_sequences(), options.order);
  if (!ranges.ok()) return ranges.status();
  const int64_t begin = (*ranges)[*split].first;
  const int64_t end = (*ranges)[*split].second;
  if (end <= begin) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: split '%s' is empty (ratios %s of %d sequences)", data->path(), options.split,
        absl::StrJoin(options.split_ratios, ","), data->num_sequences()));
  }
  std::unique_ptr<GptDataset> ds(new GptDataset());
  ds->data_ = data;
  ds->split_range_ = {begin, end};
  // The description names everything the index depends on, the order's version first (the
  // aoetron_v1 text is the one written before orders had names, so its caches are still found).
  const std::string header = options.order == SampleOrder::kAoetronV1
                                 ? "aoetron GptSampleIndex v1\n"
                                 : "aoetron GptSampleIndex v2: sample order megatron_core\n";
  const std::string description = absl::StrFormat(
      "%sdata fingerprint %s\nsequences [%d, %d) of %d\nseq_length %d\nnum_samples %d\nseed %d\n",
      header, FingerprintHex(data->fingerprint()), begin, end, data->num_sequences(),
      options.seq_length, options.num_samples, options.seed);
  std::string cache_dir = options.cache_dir;
  if (cache_dir.empty()) {
    cache_dir = (std::filesystem::path(data->path()).parent_path() / "index-cache").string();
    if (std::filesystem::path(data->path()).parent_path().empty()) cache_dir = "index-cache";
  }
  ds->cache_path_ = SampleIndexCachePath(cache_dir, description);
  auto build = [&]() -> absl::StatusOr<GptSampleIndex> {
    GptSampleIndexRequest request;
    request.seq_length = options.seq_length;
    request.num_samples = options.num_samples;
    request.seed = options.seed;
    request.order = options.order;
    for (int64_t s = begin; s < end; ++s) {
      request.sequence_ids.push_back(s);
      request.sequence_lengths.push_back(data->sequence_length(s));
    }
    absl::StatusOr<GptSampleIndex> index = BuildGptSampleIndex(request);
    if (!index.ok()) {
      return absl::Status(index.status().code(),
                          absl::StrFormat("%s, split '%s': %s", data->path(), options.split,
                                          index.status().message()));
    }
    return index;
  };
  absl::StatusOr<GptSampleIndex> index = LoadOrBuildSampleIndex(
      cache_dir, description, options.build_indices, options.wait_timeout_seconds, build);
  if (!index.ok()) return index.status();
  ds->index_ = *std::move(index);
  return ds;
}

void GptDataset::GetSample(int64_t i, int32_t* out) const {
  const int64_t n = num_samples();
  const int64_t s = index_.shuffle_index[((i % n) + n) % n];
  int64_t position = index_.sample_doc_position[s];
  int64_t offset = index_.sample_offset[s];
  const int64_t last_position = index_.sample_doc_position[s + 1];
  const int64_t last_offset = index_.sample_offset[s + 1];
  while (true) {
    const int64_t sequence = index_.document_index[position];
    if (position == last_position) {
      const int64_t count = last_offset - offset + 1;
      data_->ReadTokens(sequence, offset, count, out);
      return;
    }
    const int64_t count = data_->sequence_length(sequence) - offset;
    data_->ReadTokens(sequence, offset, count, out);
    out += count;
    ++position;
    offset = 0;
  }
}

}  // namespace aoetron::data
