// On-disk cache of GptSampleIndex, shared by all ranks of a run and by later runs.
//
// A cache file is named after everything that determines the index (the `description`: dataset
// fingerprint, split range, seq_length, samples, seed, format version):
//     <cache_dir>/<FingerprintHex(description)>.gptidx
// so changed inputs give a new name and a rebuild, never a stale index. The file stores the
// description too, and a load whose stored description differs is treated as absent.
//
// File layout, little-endian: magic "AOEGPTIX" (8 bytes), u32 version = 1, u32 description
// length, description bytes, i64 seq_length, i64 num_epochs, u64 document count, u64 sample
// count, then i64 document_index[documents], i64 sample_doc_position[samples + 1],
// i32 sample_offset[samples + 1], i64 shuffle_index[samples], then u64 fingerprint of all bytes
// before it (detects truncation and corruption).
//
// Races: the builder writes <name>.tmp.<pid>.<random> and renames it to <name> (atomic on one
// filesystem), so readers only ever see complete files. Several builders may race harmlessly:
// they write identical contents. Non-builders poll for the final name until a timeout.
//
// Thread safety: the functions share no state.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "data/gpt_sample_index.h"

namespace aoetron::data {

std::string SampleIndexCachePath(const std::string& cache_dir, const std::string& description);

// Reads a cache file. NotFound when absent; InvalidArgument (naming the file and byte offset)
// when corrupt; FailedPrecondition when it holds another description.
absl::StatusOr<GptSampleIndex> ReadSampleIndexCache(const std::string& path,
                                                    const std::string& description);
absl::Status WriteSampleIndexCache(const GptSampleIndex& index, const std::string& path,
                                   const std::string& description);

// The protocol ranks follow:
//   - a readable cache with this description is used as is;
//   - else, when is_builder, build() runs and its result is written (atomically) and returned;
//   - else wait, polling every 50 ms, for the builder's file; DeadlineExceeded after
//     timeout_seconds, naming the file and saying which rank should build it.
absl::StatusOr<GptSampleIndex> LoadOrBuildSampleIndex(
    const std::string& cache_dir, const std::string& description, bool is_builder,
    double timeout_seconds, const std::function<absl::StatusOr<GptSampleIndex>()>& build);

}  // namespace aoetron::data
