// IndexedDatasetWriter: writes a Megatron .bin/.idx pair (mmidx_format.h), one sequence per
// document, as Megatron's preprocess_data.py does without sentence splitting.
//
// Tokens stream to <prefix>.bin.tmp as documents arrive; Finish() writes <prefix>.idx.tmp and
// renames both into place (.bin first, then .idx), so a reader never sees a half-written pair
// under the final names. Destroying an unfinished writer removes its temporary files.
//
// Errors: AddDocument returns InvalidArgument for a token that does not fit the dtype (naming
// the document and position); I/O failures are Internal errors naming the file.
// Thread safety: none; one thread uses a writer.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "data/mmidx_format.h"

namespace aoetron::data {

class IndexedDatasetWriter {
 public:
  static absl::StatusOr<std::unique_ptr<IndexedDatasetWriter>> Create(const std::string& prefix,
                                                                      TokenDType dtype);
  ~IndexedDatasetWriter();

  absl::Status AddDocument(absl::Span<const int32_t> tokens);
  absl::Status Finish();

  int64_t num_documents() const { return static_cast<int64_t>(lengths_.size()); }
  int64_t num_tokens() const { return num_tokens_; }
  int64_t bin_bytes() const { return num_tokens_ * static_cast<int64_t>(item_size_); }

 private:
  IndexedDatasetWriter() = default;
  std::string prefix_;
  uint8_t dtype_code_ = 0;
  size_t item_size_ = 0;
  std::FILE* bin_ = nullptr;
  std::vector<int32_t> lengths_;
  int64_t num_tokens_ = 0;
  std::vector<char> encode_buffer_;
  bool finished_ = false;
};

}  // namespace aoetron::data
