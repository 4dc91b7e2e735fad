#include "launcher/token_file_data.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "core/check.h"
#include "core/rng.h"

namespace aoetron {

MappedTokenFile::MappedTokenFile(std::string path, const void* data, size_t bytes)
    : path_(std::move(path)),
      data_(data),
      bytes_(bytes),
      num_tokens_(static_cast<int64_t>(bytes / 2)) {}

MappedTokenFile::~MappedTokenFile() {
  if (data_ != nullptr) munmap(const_cast<void*>(data_), bytes_);
}

uint16_t MappedTokenFile::token(int64_t position) const {
  const unsigned char* bytes = static_cast<const unsigned char*>(data_) + 2 * position;
  return static_cast<uint16_t>(bytes[0] | (bytes[1] << 8));
}

absl::StatusOr<std::shared_ptr<const MappedTokenFile>> MappedTokenFile::Open(
    const std::string& path, int64_t vocab_size) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("token file \"%s\": cannot open: %s", path, std::strerror(errno)));
  }
  struct stat info;
  if (fstat(fd, &info) != 0) {
    const int error = errno;
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrFormat("token file \"%s\": cannot stat: %s", path, std::strerror(error)));
  }
  const size_t bytes = static_cast<size_t>(info.st_size);
  if (bytes == 0 || bytes % 2 != 0) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrFormat(
        "token file \"%s\": %d bytes is %s; expected raw little-endian uint16 tokens", path, bytes,
        bytes == 0 ? "empty" : "not a whole number of 2-byte tokens"));
  }
  void* data = mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_error = errno;
  close(fd);  // the mapping keeps the file alive
  if (data == MAP_FAILED) {
    return absl::InvalidArgumentError(
        absl::StrFormat("token file \"%s\": cannot map: %s", path, std::strerror(map_error)));
  }
  std::shared_ptr<MappedTokenFile> file(new MappedTokenFile(path, data, bytes));
  // One pass over the file so a bad token stops the run now, not at some step hours later.
  for (int64_t i = 0; i < file->num_tokens(); ++i) {
    if (file->token(i) >= vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrFormat("token file \"%s\": token %d at position %d is ≥ model.vocab_size (%d)",
                          path, file->token(i), i, vocab_size));
    }
  }
  return std::shared_ptr<const MappedTokenFile>(std::move(file));
}

TokenFileSource::TokenFileSource(std::shared_ptr<const MappedTokenFile> file, int64_t begin,
                                 int64_t end, int64_t seq_len, uint64_t seed, uint64_t stream)
    : file_(std::move(file)),
      begin_(begin),
      end_(end),
      seq_len_(seq_len),
      seed_(seed),
      stream_(stream) {
  AOETRON_CHECK(begin >= 0 && end <= file_->num_tokens() && end - begin >= seq_len + 1)
      << "TokenFileSource: region [" << begin << ", " << end << ") cannot hold " << seq_len + 1
      << " tokens";
}

int64_t TokenFileSource::SampleStart(int64_t sample) const {
  const uint64_t starts = static_cast<uint64_t>(end_ - begin_ - seq_len_);  // ≥ 1
  return begin_ +
         static_cast<int64_t>(UniformIntAt(seed_, stream_, static_cast<uint64_t>(sample), starts));
}

void TokenFileSource::FillBatch(int64_t index, Tensor& tokens, Tensor& targets) const {
  AOETRON_CHECK(tokens.rank() == 2 && tokens.shape() == targets.shape() &&
                tokens.dim(1) == seq_len_)
      << "FillBatch: tokens " << tokens.DebugString() << ", targets " << targets.DebugString()
      << ", seq_len " << seq_len_;
  const int64_t batch = tokens.dim(0);
  int32_t* token_out = tokens.data<int32_t>();
  int32_t* target_out = targets.data<int32_t>();
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t start = SampleStart(index * batch + b);
    for (int64_t t = 0; t < seq_len_; ++t) {
      token_out[b * seq_len_ + t] = file_->token(start + t);
      target_out[b * seq_len_ + t] = file_->token(start + t + 1);
    }
  }
}

absl::StatusOr<std::unique_ptr<TokenBatchSource>> MakeTokenFileSource(
    std::shared_ptr<const MappedTokenFile> file, int64_t begin, int64_t end, int64_t seq_len,
    uint64_t seed, uint64_t stream, const std::string& what) {
  if (end - begin < seq_len + 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "token file \"%s\": %s holds %d tokens, but one sample needs model.seq_len + 1 = %d",
        file->path(), what, end - begin, seq_len + 1));
  }
  return std::unique_ptr<TokenBatchSource>(
      new TokenFileSource(std::move(file), begin, end, seq_len, seed, stream));
}

}  // namespace aoetron
