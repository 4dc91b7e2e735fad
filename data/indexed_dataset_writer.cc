#include "data/indexed_dataset_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace aoetron::data {
namespace {

absl::Status IoError(const std::string& path, const char* what) {
  return absl::InternalError(absl::StrCat(path, ": ", what, ": ", std::strerror(errno)));
}

template <typename T>
void Append(std::string* out, T value) {
  out->append(reinterpret_cast<const char*>(&value), sizeof(T));
}

}  // namespace

absl::StatusOr<std::unique_ptr<IndexedDatasetWriter>> IndexedDatasetWriter::Create(
    const std::string& prefix, TokenDType dtype) {
  const uint8_t code = static_cast<uint8_t>(dtype);
  if (!IsTokenDType(code) || code == static_cast<uint8_t>(TokenDType::kInt64)) {
    return absl::InvalidArgumentError(
        absl::StrCat("IndexedDatasetWriter: unsupported token dtype ", TokenDTypeName(code)));
  }
  std::unique_ptr<IndexedDatasetWriter> w(new IndexedDatasetWriter());
  w->prefix_ = prefix;
  w->dtype_code_ = code;
  w->item_size_ = TokenDTypeSize(code);
  const std::filesystem::path parent = std::filesystem::path(prefix).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) return absl::InternalError(absl::StrCat(parent.string(), ": ", ec.message()));
  }
  const std::string tmp = prefix + ".bin.tmp";
  w->bin_ = std::fopen(tmp.c_str(), "wb");
  if (w->bin_ == nullptr) return IoError(tmp, "cannot create");
  std::setvbuf(w->bin_, nullptr, _IOFBF, 1 << 20);
  return w;
}

IndexedDatasetWriter::~IndexedDatasetWriter() {
  if (bin_ != nullptr) std::fclose(bin_);
  if (!finished_) {
    std::remove((prefix_ + ".bin.tmp").c_str());
    std::remove((prefix_ + ".idx.tmp").c_str());
  }
}

absl::Status IndexedDatasetWriter::AddDocument(absl::Span<const int32_t> tokens) {
  if (finished_) return absl::FailedPreconditionError("IndexedDatasetWriter: already finished");
  if (tokens.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "document %d has %d tokens; sequence lengths are int32", lengths_.size(), tokens.size()));
  }
  int64_t lo = 0, hi = 0;
  switch (dtype_code_) {
    case 1:
      lo = 0;
      hi = 255;
      break;
    case 2:
      lo = -128;
      hi = 127;
      break;
    case 3:
      lo = -32768;
      hi = 32767;
      break;
    case 8:
      lo = 0;
      hi = 65535;
      break;
    default:
      lo = std::numeric_limits<int32_t>::min();
      hi = std::numeric_limits<int32_t>::max();
  }
  encode_buffer_.resize(tokens.size() * item_size_);
  char* out = encode_buffer_.data();
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t t = tokens[i];
    if (t < lo || t > hi) {
      return absl::InvalidArgumentError(
          absl::StrFormat("document %d, position %d: token %d does not fit %s", lengths_.size(), i,
                          t, TokenDTypeName(dtype_code_)));
    }
    switch (item_size_) {
      case 1:
        out[i] = static_cast<char>(t);
        break;
      case 2: {
        const uint16_t v = static_cast<uint16_t>(t);
        std::memcpy(out + 2 * i, &v, 2);
        break;
      }
      default:
        std::memcpy(out + 4 * i, &t, 4);
    }
  }
  if (!encode_buffer_.empty() &&
      std::fwrite(encode_buffer_.data(), 1, encode_buffer_.size(), bin_) != encode_buffer_.size()) {
    return IoError(prefix_ + ".bin.tmp", "write failed");
  }
  lengths_.push_back(static_cast<int32_t>(tokens.size()));
  num_tokens_ += static_cast<int64_t>(tokens.size());
  return absl::OkStatus();
}

absl::Status IndexedDatasetWriter::Finish() {
  if (finished_) return absl::FailedPreconditionError("IndexedDatasetWriter: already finished");
  const std::string bin_tmp = prefix_ + ".bin.tmp";
  const std::string idx_tmp = prefix_ + ".idx.tmp";
  if (std::fflush(bin_) != 0 || std::fclose(bin_) != 0) {
    bin_ = nullptr;
    return IoError(bin_tmp, "write failed");
  }
  bin_ = nullptr;
  const uint64_t sequences = lengths_.size();
  std::string idx;
  idx.reserve(kMmidxHeaderBytes + 20 * sequences + 16);
  idx.append(kMmidxMagic, sizeof(kMmidxMagic));
  Append<uint64_t>(&idx, kMmidxVersion);
  Append<uint8_t>(&idx, dtype_code_);
  Append<uint64_t>(&idx, sequences);
  Append<uint64_t>(&idx, sequences + 1);  // document_indices: 0, 1, ..., S
  for (int32_t length : lengths_) Append<int32_t>(&idx, length);
  int64_t pointer = 0;
  for (int32_t length : lengths_) {
    Append<int64_t>(&idx, pointer);
    pointer += static_cast<int64_t>(length) * static_cast<int64_t>(item_size_);
  }
  for (uint64_t d = 0; d <= sequences; ++d) Append<int64_t>(&idx, static_cast<int64_t>(d));
  std::FILE* f = std::fopen(idx_tmp.c_str(), "wb");
  if (f == nullptr) return IoError(idx_tmp, "cannot create");
  const bool wrote = std::fwrite(idx.data(), 1, idx.size(), f) == idx.size();
  if (!wrote || std::fclose(f) != 0) return IoError(idx_tmp, "write failed");
  if (std::rename(bin_tmp.c_str(), (prefix_ + ".bin").c_str()) != 0) {
    return IoError(prefix_ + ".bin", "rename failed");
  }
  if (std::rename(idx_tmp.c_str(), (prefix_ + ".idx").c_str()) != 0) {
    return IoError(prefix_ + ".idx", "rename failed");
  }
  finished_ = true;
  return absl::OkStatus();
}

}  // namespace aoetron::data
