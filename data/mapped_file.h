// MappedFile: a whole file mapped read-only into memory.
//
// Ownership: the mapping lives as long as the MappedFile; pointers from data() must not outlive
// it. An empty file maps to size() == 0 and a non-null data() that must not be read.
// Thread safety: immutable after Open; reads from any number of threads are safe.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace aoetron::data {

class MappedFile {
 public:
  // NotFound when the file does not exist; Internal for other system errors. Both name the path.
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path);
  // In-memory contents under a path name (for tests and fuzzing): behaves like a mapped file.
  static std::unique_ptr<MappedFile> FromBytes(std::string path, std::string bytes);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const char* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const char* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const char* data_;
  size_t size_;
  std::string owned_;  // FromBytes only
};

}  // namespace aoetron::data
