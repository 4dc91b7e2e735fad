// DocumentReader: turns corpus inputs into documents, in a fixed order.
//
// Inputs are files or directories (walked recursively, entries in byte order of their paths,
// names starting with '.' skipped). A file ending in .jsonl or .json is JSON Lines: each
// non-blank line is one JSON object and its string field `json_key` is one document. Any other
// file is plain text and is one document.
//
// Errors name the file and the line or byte offset:
//   - a missing input: NotFound;
//   - a JSONL line that is not an object with a string `json_key`: InvalidArgument
//     "FILE: line N: byte offset K: ..." (K counted from the start of the line);
//   - text that is not UTF-8 (unless allow_invalid_utf8): InvalidArgument
//     "FILE: byte offset N: ..." (for JSONL also the line);
//   - an empty document (unless skip_empty): InvalidArgument naming the file (and line).
// Thread safety: none; one thread reads.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace aoetron::data {

struct Document {
  std::string text;
  std::string origin;  // "FILE" or "FILE: line N", for messages
};

struct DocumentReaderOptions {
  std::string json_key = "text";
  bool skip_empty = false;
  bool allow_invalid_utf8 = false;
};

class DocumentReader {
 public:
  static absl::StatusOr<std::unique_ptr<DocumentReader>> Create(
      const std::vector<std::string>& inputs, const DocumentReaderOptions& options);

  // Appends documents to `batch` until their text reaches `max_bytes` or the inputs end.
  // Returns false once there was nothing left to read.
  absl::StatusOr<bool> NextBatch(size_t max_bytes, std::vector<Document>* batch);

  const std::vector<std::string>& files() const { return files_; }
  int64_t text_bytes() const { return text_bytes_; }
  int64_t skipped_empty() const { return skipped_empty_; }

 private:
  DocumentReader() = default;
  // Reads the next document into *doc; false at the end of all inputs.
  absl::StatusOr<bool> ReadDocument(Document* doc);

  DocumentReaderOptions options_;
  std::vector<std::string> files_;
  size_t next_file_ = 0;
  // The JSONL file being read, if any.
  std::unique_ptr<std::ifstream> jsonl_;
  std::string jsonl_path_;
  int64_t jsonl_line_ = 0;
  int64_t jsonl_offset_ = 0;
  int64_t text_bytes_ = 0;
  int64_t skipped_empty_ = 0;
};

// True for inputs read as JSON Lines.
bool IsJsonLinesPath(const std::string& path);

}  // namespace aoetron::data
