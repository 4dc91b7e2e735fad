#include "data/document_reader.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_format.h"
#include "data/json_string.h"
#include "data/tokenizer_files.h"
#include "data/unicode_classes.h"

namespace aoetron::data {

bool IsJsonLinesPath(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  return ext == ".jsonl" || ext == ".json";
}

absl::StatusOr<std::unique_ptr<DocumentReader>> DocumentReader::Create(
    const std::vector<std::string>& inputs, const DocumentReaderOptions& options) {
  std::unique_ptr<DocumentReader> reader(new DocumentReader());
  reader->options_ = options;
  if (inputs.empty()) return absl::InvalidArgumentError("no input files or directories given");
  for (const std::string& input : inputs) {
    std::error_code ec;
    if (std::filesystem::is_directory(input, ec)) {
      std::vector<std::string> found;
      for (auto it = std::filesystem::recursive_directory_iterator(input, ec);
           !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (!name.empty() && name[0] == '.') {
          if (it->is_directory()) it.disable_recursion_pending();
          continue;
        }
        if (it->is_regular_file()) found.push_back(it->path().string());
      }
      if (ec) return absl::InternalError(absl::StrFormat("%s: %s", input, ec.message()));
      std::sort(found.begin(), found.end());
      reader->files_.insert(reader->files_.end(), found.begin(), found.end());
    } else if (std::filesystem::is_regular_file(input, ec)) {
      reader->files_.push_back(input);
    } else {
      return absl::NotFoundError(absl::StrFormat("%s: no such file or directory", input));
    }
  }
  return reader;
}

absl::StatusOr<bool> DocumentReader::ReadDocument(Document* doc) {
  while (true) {
    if (jsonl_ != nullptr) {
      std::string line;
      if (std::getline(*jsonl_, line)) {
        ++jsonl_line_;
        const int64_t line_offset = jsonl_offset_;
        jsonl_offset_ += static_cast<int64_t>(line.size()) + 1;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank line
        if (!options_.allow_invalid_utf8) {
          const int64_t bad = FindInvalidUtf8(line.data(), line.size());
          if (bad >= 0) {
            return absl::InvalidArgumentError(
                absl::StrFormat("%s: line %d: byte offset %d: not valid UTF-8", jsonl_path_,
                                jsonl_line_, line_offset + bad));
          }
        }
        doc->origin = absl::StrFormat("%s: line %d", jsonl_path_, jsonl_line_);
        absl::Status s = ExtractJsonStringField(line, options_.json_key, &doc->text);
        if (!s.ok()) {
          return absl::InvalidArgumentError(
              absl::StrFormat("%s: malformed JSONL: %s", doc->origin, s.message()));
        }
      } else {
        if (jsonl_->bad()) return absl::InternalError(jsonl_path_ + ": read error");
        jsonl_.reset();
        continue;
      }
    } else {
      if (next_file_ >= files_.size()) return false;
      const std::string& path = files_[next_file_++];
      if (IsJsonLinesPath(path)) {
        jsonl_ = std::make_unique<std::ifstream>(path, std::ios::binary);
        if (!*jsonl_) return absl::NotFoundError(path + ": cannot open");
        jsonl_path_ = path;
        jsonl_line_ = 0;
        jsonl_offset_ = 0;
        continue;
      }
      absl::StatusOr<std::string> text = ReadFileToString(path);
      if (!text.ok()) return text.status();
      doc->text = *std::move(text);
      doc->origin = path;
      if (!options_.allow_invalid_utf8) {
        const int64_t bad = FindInvalidUtf8(doc->text.data(), doc->text.size());
        if (bad >= 0) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "%s: byte offset %d: not valid UTF-8 (pass --allow-invalid-utf8 to tokenize the "
              "bytes as they are)",
              path, bad));
        }
      }
    }
    if (doc->text.empty()) {
      if (options_.skip_empty) {
        ++skipped_empty_;
        continue;
      }
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: empty document (pass --skip-empty to leave empty documents out)", doc->origin));
    }
    text_bytes_ += static_cast<int64_t>(doc->text.size());
    return true;
  }
}

absl::StatusOr<bool> DocumentReader::NextBatch(size_t max_bytes, std::vector<Document>* batch) {
  size_t bytes = 0;
  bool any = false;
  while (bytes < max_bytes) {
    Document doc;
    absl::StatusOr<bool> got = ReadDocument(&doc);
    if (!got.ok()) return got.status();
    if (!*got) break;
    bytes += doc.text.size();
    batch->push_back(std::move(doc));
    any = true;
  }
  return any;
}

}  // namespace aoetron::data
