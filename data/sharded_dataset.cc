#include "data/sharded_dataset.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_format.h"
#include "core/check.h"
#include "data/fingerprint.h"

namespace aoetron::data {

absl::StatusOr<std::unique_ptr<ShardedDataset>> ShardedDataset::Open(const std::string& path) {
  std::unique_ptr<ShardedDataset> ds(new ShardedDataset());
  ds->path_ = path;
  const std::string manifest_path = path + kManifestSuffix;
  if (std::filesystem::exists(manifest_path)) {
    absl::StatusOr<ShardManifest> manifest = ReadShardManifest(manifest_path);
    if (!manifest.ok()) return manifest.status();
    ds->manifest_ = *std::move(manifest);
    const std::filesystem::path dir = std::filesystem::path(manifest_path).parent_path();
    for (size_t i = 0; i < ds->manifest_.shards.size(); ++i) {
      const ShardEntry& entry = ds->manifest_.shards[i];
      const std::string prefix = (dir / entry.name).string();
      absl::StatusOr<std::unique_ptr<IndexedDataset>> shard = IndexedDataset::Open(prefix);
      if (!shard.ok()) {
        return absl::Status(shard.status().code(),
                            absl::StrFormat("%s: shard %d (%s): %s", manifest_path, i, entry.name,
                                            shard.status().message()));
      }
      if ((*shard)->num_documents() != entry.documents || (*shard)->num_tokens() != entry.tokens) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: shard %d (%s) has %d documents and %d tokens, the manifest says %d and %d",
            manifest_path, i, entry.name, (*shard)->num_documents(), (*shard)->num_tokens(),
            entry.documents, entry.tokens));
      }
      ds->shards_.push_back(*std::move(shard));
    }
  } else {
    if (!std::filesystem::exists(path + ".idx") && !std::filesystem::exists(path + ".bin")) {
      return absl::NotFoundError(absl::StrFormat(
          "%s: no dataset here: neither %s nor %s.idx/.bin exist", path, manifest_path, path));
    }
    absl::StatusOr<std::unique_ptr<IndexedDataset>> single = IndexedDataset::Open(path);
    if (!single.ok()) return single.status();
    ds->shards_.push_back(*std::move(single));
  }
  uint64_t h = Fingerprint64("aoetron-sharded-dataset");
  for (const auto& shard : ds->shards_) {
    ds->sequence_starts_.push_back(ds->sequence_starts_.back() + shard->num_sequences());
    ds->num_documents_ += shard->num_documents();
    ds->num_tokens_ += shard->num_tokens();
    h = Fingerprint64(shard->idx_file().data(), shard->idx_file().size(), h);
    const uint64_t bin_bytes = shard->bin_bytes();
    h = Fingerprint64(&bin_bytes, sizeof(bin_bytes), h);
  }
  ds->fingerprint_ = h;
  return ds;
}

int32_t ShardedDataset::sequence_length(int64_t i) const {
  const size_t s =
      static_cast<size_t>(std::upper_bound(sequence_starts_.begin(), sequence_starts_.end(), i) -
                          sequence_starts_.begin() - 1);
  return shards_[s]->sequence_length(i - sequence_starts_[s]);
}

void ShardedDataset::ReadTokens(int64_t sequence, int64_t offset, int64_t count,
                                int32_t* out) const {
  AOETRON_CHECK(sequence >= 0 && sequence < num_sequences()) << "sequence " << sequence;
  const size_t s = static_cast<size_t>(
      std::upper_bound(sequence_starts_.begin(), sequence_starts_.end(), sequence) -
      sequence_starts_.begin() - 1);
  shards_[s]->ReadTokens(sequence - sequence_starts_[s], offset, count, out);
}

std::vector<int32_t> ShardedDataset::SequenceLengths() const {
  std::vector<int32_t> lengths;
  lengths.reserve(static_cast<size_t>(num_sequences()));
  for (const auto& shard : shards_) {
    for (int64_t i = 0; i < shard->num_sequences(); ++i)
      lengths.push_back(shard->sequence_length(i));
  }
  return lengths;
}

}  // namespace aoetron::data
