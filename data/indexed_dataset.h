// IndexedDataset: a memory-mapped Megatron .bin/.idx pair (format in mmidx_format.h).
//
// Open checks everything that can be checked without reading the tokens: the header, that the
// .idx is exactly as long as its counts say, that every sequence pointer follows from the
// lengths, that document indices rise from 0 to the sequence count, and that the .bin is exactly
// as long as the .idx says. Any violation is an InvalidArgument error naming the file and the
// byte offset of the first bad field. Files written by Megatron-LM load unchanged.
// CheckTokens reads every token (O(tokens)) and reports the first out-of-range id.
//
// Ownership: the dataset owns its mappings. Thread safety: immutable after Open; all const
// methods may be called concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/mapped_file.h"
#include "data/mmidx_format.h"

namespace aoetron::data {

class IndexedDataset {
 public:
  // Maps <prefix>.idx and <prefix>.bin and validates their structure.
  static absl::StatusOr<std::unique_ptr<IndexedDataset>> Open(const std::string& prefix);
  // The same checks on files already opened (or in memory: MappedFile::FromBytes).
  static absl::StatusOr<std::unique_ptr<IndexedDataset>> FromFiles(const std::string& prefix,
                                                                   std::unique_ptr<MappedFile> idx,
                                                                   std::unique_ptr<MappedFile> bin);

  int64_t num_sequences() const { return num_sequences_; }
  // Documents = entries of document_indices - 1.
  int64_t num_documents() const { return num_document_indices_ - 1; }
  int64_t num_tokens() const { return num_tokens_; }
  uint8_t dtype_code() const { return dtype_code_; }

  int32_t sequence_length(int64_t i) const {
    return LoadUnaligned<int32_t>(idx_->data() + kMmidxHeaderBytes + 4 * i);
  }
  int64_t sequence_pointer(int64_t i) const {
    return LoadUnaligned<int64_t>(idx_->data() + pointers_offset_ + 8 * i);
  }
  // i in [0, num_documents()]: the first sequence of document i (i = num_documents(): the end).
  int64_t document_index(int64_t i) const {
    return LoadUnaligned<int64_t>(idx_->data() + documents_offset_ + 8 * i);
  }

  // Copies tokens [offset, offset + count) of `sequence` to `out` as int32. The range must lie
  // inside the sequence (checked; a violation is a bug of the caller and aborts).
  void ReadTokens(int64_t sequence, int64_t offset, int64_t count, int32_t* out) const;

  // Reads every token; InvalidArgument naming the .bin and the byte offset of the first token
  // outside [0, vocab_size), and of the first empty sequence when !allow_empty_sequences.
  absl::Status CheckTokens(int64_t vocab_size, bool allow_empty_sequences) const;

  const std::string& prefix() const { return prefix_; }
  std::string idx_path() const { return prefix_ + ".idx"; }
  std::string bin_path() const { return prefix_ + ".bin"; }
  // The raw .idx bytes (for fingerprints of what a sample index was built from).
  const MappedFile& idx_file() const { return *idx_; }
  size_t bin_bytes() const { return bin_->size(); }

 private:
  IndexedDataset() = default;
  std::string prefix_;
  std::unique_ptr<MappedFile> idx_;
  std::unique_ptr<MappedFile> bin_;
  uint8_t dtype_code_ = 0;
  size_t item_size_ = 0;
  int64_t num_sequences_ = 0;
  int64_t num_document_indices_ = 0;
  int64_t num_tokens_ = 0;
  size_t pointers_offset_ = 0;
  size_t documents_offset_ = 0;
};

}  // namespace aoetron::data
