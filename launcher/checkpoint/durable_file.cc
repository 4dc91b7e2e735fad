#include "launcher/checkpoint/durable_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace aoetron::checkpoint {
namespace {

absl::Status ErrnoError(const std::string& what, const std::string& path, int error) {
  const std::string message = absl::StrCat(path, ": ", what, " failed: ", std::strerror(error));
  if (error == ENOENT) return absl::NotFoundError(message);
  if (error == ENOSPC || error == EDQUOT) return absl::ResourceExhaustedError(message);
  if (error == EACCES || error == EPERM) return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

}  // namespace

FileDescriptor::FileDescriptor(FileDescriptor&& other) noexcept
    : fd_(other.fd_), path_(std::move(other.path_)) {
  other.fd_ = -1;
}

FileDescriptor& FileDescriptor::operator=(FileDescriptor&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    path_ = std::move(other.path_);
    other.fd_ = -1;
  }
  return *this;
}

FileDescriptor::~FileDescriptor() {
  if (fd_ >= 0) ::close(fd_);
}

absl::StatusOr<FileDescriptor> FileDescriptor::OpenForRead(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open", path, errno);
  return FileDescriptor(fd, path);
}

absl::StatusOr<FileDescriptor> FileDescriptor::Create(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("create", path, errno);
  return FileDescriptor(fd, path);
}

absl::Status FileDescriptor::WriteAll(const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    // Linux writes at most ~2 GiB per call.
    const ssize_t n = ::write(fd_, p, std::min<size_t>(size, size_t{1} << 30));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write", path_, errno);
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status FileDescriptor::ReadAt(void* data, size_t size, uint64_t offset) const {
  auto* p = static_cast<uint8_t*>(data);
  while (size > 0) {
    const ssize_t n =
        ::pread(fd_, p, std::min<size_t>(size, size_t{1} << 30), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("read", path_, errno);
    }
    if (n == 0) {
      return absl::DataLossError(absl::StrCat(path_, ": file ends at byte ", offset,
                                              ", expected data up to byte ", offset + size,
                                              " (truncated?)"));
    }
    p += n;
    offset += static_cast<uint64_t>(n);
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> FileDescriptor::Size() const {
  struct stat st;
  if (::fstat(fd_, &st) != 0) return ErrnoError("stat", path_, errno);
  return static_cast<uint64_t>(st.st_size);
}

absl::Status FileDescriptor::Sync() {
  if (::fsync(fd_) != 0) return ErrnoError("fsync", path_, errno);
  return absl::OkStatus();
}

absl::Status FileDescriptor::Close() {
  if (fd_ < 0) return absl::OkStatus();
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) return ErrnoError("close", path_, errno);
  return absl::OkStatus();
}

void FileDescriptor::DropCache() const { ::posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED); }

absl::Status SyncDirectory(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open directory", path, errno);
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) return ErrnoError("fsync directory", path, error);
  return absl::OkStatus();
}

absl::Status MakeDirectories(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return ErrnoError("create directory", path, ec.value());
  if (!std::filesystem::is_directory(path, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": exists and is not a directory"));
  }
  return absl::OkStatus();
}

absl::Status RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return ErrnoError("remove", path, ec.value());
  return absl::OkStatus();
}

absl::Status Rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return ErrnoError(absl::StrCat("rename to ", to), from, errno);
  }
  return absl::OkStatus();
}

absl::Status WriteFileSynced(const std::string& path, std::string_view contents) {
  absl::StatusOr<FileDescriptor> file = FileDescriptor::Create(path);
  if (!file.ok()) return file.status();
  if (absl::Status s = file->WriteAll(contents.data(), contents.size()); !s.ok()) return s;
  if (absl::Status s = file->Sync(); !s.ok()) return s;
  return file->Close();
}

absl::Status ReplaceFileAtomically(const std::string& path, std::string_view contents) {
  const std::string temp = path + ".tmp";
  if (absl::Status s = WriteFileSynced(temp, contents); !s.ok()) return s;
  if (absl::Status s = Rename(temp, path); !s.ok()) return s;
  const std::string parent = std::filesystem::path(path).parent_path().string();
  return SyncDirectory(parent.empty() ? "." : parent);
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  absl::StatusOr<FileDescriptor> file = FileDescriptor::OpenForRead(path);
  if (!file.ok()) return file.status();
  absl::StatusOr<uint64_t> size = file->Size();
  if (!size.ok()) return size.status();
  std::string contents(*size, '\0');
  if (absl::Status s = file->ReadAt(contents.data(), contents.size(), 0); !s.ok()) return s;
  return contents;
}

std::string JoinPath(std::string_view directory, std::string_view name) {
  if (directory.empty()) return std::string(name);
  std::string path(directory);
  if (directory.back() != '/') path += '/';
  return path.append(name);
}

void FreeHostBuffer::operator()(uint8_t* p) const { std::free(p); }

HostBuffer AllocateHostBuffer(uint64_t bytes) {
  constexpr uint64_t kHugePage = uint64_t{2} << 20;
  const uint64_t size =
      std::max<uint64_t>(kHugePage, (bytes + kHugePage - 1) / kHugePage * kHugePage);
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(kHugePage, size));
  if (p != nullptr) ::madvise(p, size, MADV_HUGEPAGE);  // advice only; failure is harmless
  return HostBuffer(p);
}

}  // namespace aoetron::checkpoint
