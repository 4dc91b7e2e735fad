// Durable file operations for the checkpoint commit protocol: every error names the path and
// the system's reason (strerror). POSIX only. Free functions and a move-only fd holder;
// thread-safe on different files.
//
// Durability follows the usual POSIX recipe: data reaches the disk with fsync(file); a new
// name (create, rename) reaches it with fsync(directory that holds the name).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace aoetron::checkpoint {

// An open file descriptor, closed by the destructor (errors on that close are ignored; call
// Close() to see them).
class FileDescriptor {
 public:
  FileDescriptor() = default;
  explicit FileDescriptor(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  FileDescriptor(FileDescriptor&& other) noexcept;
  FileDescriptor& operator=(FileDescriptor&& other) noexcept;
  ~FileDescriptor();

  // O_RDONLY; NotFound if the file is missing.
  static absl::StatusOr<FileDescriptor> OpenForRead(const std::string& path);
  // O_WRONLY | O_CREAT | O_TRUNC, mode 0644.
  static absl::StatusOr<FileDescriptor> Create(const std::string& path);

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

  // Writes all `size` bytes (retrying short writes and EINTR).
  absl::Status WriteAll(const void* data, size_t size);
  // Reads exactly `size` bytes at `offset`; DataLoss naming the path if the file ends first.
  absl::Status ReadAt(void* data, size_t size, uint64_t offset) const;
  absl::StatusOr<uint64_t> Size() const;
  absl::Status Sync();
  absl::Status Close();
  // Asks the kernel to drop this file's cached pages (benchmarks: read from the disk, not RAM).
  void DropCache() const;

 private:
  int fd_ = -1;
  std::string path_;
};

absl::Status SyncDirectory(const std::string& path);
// Creates `path` (and parents); OK if it exists as a directory.
absl::Status MakeDirectories(const std::string& path);
// Removes `path` and everything under it; OK if it does not exist.
absl::Status RemoveTree(const std::string& path);
// rename(2): atomic replacement of `to` (a file, or an empty directory).
absl::Status Rename(const std::string& from, const std::string& to);

// Creates or truncates `path`, writes `contents`, fsyncs the file.
absl::Status WriteFileSynced(const std::string& path, std::string_view contents);
// Replaces `path` atomically: writes `path.tmp`, fsyncs it, renames it over `path`, fsyncs the
// directory. Readers see the old contents or the new, never a mix.
absl::Status ReplaceFileAtomically(const std::string& path, std::string_view contents);
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

std::string JoinPath(std::string_view directory, std::string_view name);

// A large uninitialised host buffer for checkpoint data: 2 MiB aligned and marked for
// transparent huge pages (MADV_HUGEPAGE), so first touching it costs one fault per 2 MiB instead
// of per 4 KiB (measured in docs/checkpoint.md). Null when out of memory.
struct FreeHostBuffer {
  void operator()(uint8_t* p) const;
};
using HostBuffer = std::unique_ptr<uint8_t[], FreeHostBuffer>;
HostBuffer AllocateHostBuffer(uint64_t bytes);

}  // namespace aoetron::checkpoint
