// The manifest of a sharded token dataset: <prefix>.manifest, a small text file beside the
// shards <prefix>_000000.bin/.idx, <prefix>_000001.bin/.idx, ... that aoetron-data tokenize
// writes. Each shard is an ordinary Megatron .bin/.idx pair that Megatron can read on its own.
//
//   format aoetron-shards 1
//   vocab_size 50257
//   dtype uint16
//   tokenizer corpora/tokenizers/gpt2
//   text_bytes 4434653
//   shard kjv_gpt2_000000 documents 1189 tokens 1021432
//   shard kjv_gpt2_000001 documents ...
//
// Lines starting with '#' and blank lines are ignored; shard names are relative to the
// manifest's directory. Parse errors are InvalidArgument naming the file and line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace aoetron::data {

struct ShardEntry {
  std::string name;  // prefix relative to the manifest's directory
  int64_t documents = 0;
  int64_t tokens = 0;
};

struct ShardManifest {
  int64_t vocab_size = 0;
  std::string dtype;
  std::string tokenizer;
  int64_t text_bytes = 0;  // bytes of source text the shards were made from
  std::vector<ShardEntry> shards;
};

inline constexpr char kManifestSuffix[] = ".manifest";

absl::StatusOr<ShardManifest> ParseShardManifest(const std::string& content,
                                                 const std::string& path);
absl::StatusOr<ShardManifest> ReadShardManifest(const std::string& path);
// Writes via a temporary file and rename.
absl::Status WriteShardManifest(const ShardManifest& manifest, const std::string& path);
// "<prefix>_<index as 6 digits>"
std::string ShardPrefix(const std::string& prefix, int index);

}  // namespace aoetron::data
