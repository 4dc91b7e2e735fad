// ShardedDataset: one logical token dataset made of one or more Megatron .bin/.idx shards.
//
// Open(path) accepts either
//   - a sharded dataset: <path>.manifest exists (shard_manifest.h); every listed shard is opened
//     and checked against the manifest's document and token counts; or
//   - a plain Megatron pair: <path>.bin and <path>.idx (vocab_size() is then 0: unknown).
// Sequences are numbered across shards in manifest order.
//
// Errors: NotFound naming the missing file (and the manifest line of a missing shard);
// InvalidArgument from the format checks (indexed_dataset.h) or a count mismatch.
// Ownership and thread safety: as IndexedDataset (immutable; concurrent reads are safe).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/indexed_dataset.h"
#include "data/shard_manifest.h"

namespace aoetron::data {

class ShardedDataset {
 public:
  static absl::StatusOr<std::unique_ptr<ShardedDataset>> Open(const std::string& path);

  int64_t num_sequences() const { return sequence_starts_.back(); }
  int64_t num_documents() const { return num_documents_; }
  int64_t num_tokens() const { return num_tokens_; }
  int32_t sequence_length(int64_t i) const;
  // Tokens [offset, offset+count) of sequence i as int32 (range checked, aborts on misuse).
  void ReadTokens(int64_t sequence, int64_t offset, int64_t count, int32_t* out) const;
  // Lengths of all sequences, in order.
  std::vector<int32_t> SequenceLengths() const;

  // From the manifest; 0 when unknown.
  int64_t vocab_size() const { return manifest_.vocab_size; }
  int64_t text_bytes() const { return manifest_.text_bytes; }
  const std::string& path() const { return path_; }
  const std::vector<std::unique_ptr<IndexedDataset>>& shards() const { return shards_; }
  // A hash of every shard's .idx bytes and .bin size: changes whenever the data changes.
  uint64_t fingerprint() const { return fingerprint_; }

 private:
  ShardedDataset() = default;
  std::string path_;
  ShardManifest manifest_;
  std::vector<std::unique_ptr<IndexedDataset>> shards_;
  std::vector<int64_t> sequence_starts_{0};  // shards_.size() + 1 entries
  int64_t num_documents_ = 0;
  int64_t num_tokens_ = 0;
  uint64_t fingerprint_ = 0;
};

}  // namespace aoetron::data
