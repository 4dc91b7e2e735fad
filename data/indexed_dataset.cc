#include "data/indexed_dataset.h"

#include "absl/strings/str_format.h"
#include "core/check.h"

namespace aoetron::data {
namespace {

absl::Status Bad(const std::string& path, uint64_t offset, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrFormat("%s: byte offset %d: %s", path, offset, what));
}

}  // namespace

absl::StatusOr<std::unique_ptr<IndexedDataset>> IndexedDataset::Open(const std::string& prefix) {
  absl::StatusOr<std::unique_ptr<MappedFile>> idx = MappedFile::Open(prefix + ".idx");
  if (!idx.ok()) return idx.status();
  absl::StatusOr<std::unique_ptr<MappedFile>> bin = MappedFile::Open(prefix + ".bin");
  if (!bin.ok()) return bin.status();
  return FromFiles(prefix, *std::move(idx), *std::move(bin));
}

absl::StatusOr<std::unique_ptr<IndexedDataset>> IndexedDataset::FromFiles(
    const std::string& prefix, std::unique_ptr<MappedFile> idx, std::unique_ptr<MappedFile> bin) {
  std::unique_ptr<IndexedDataset> ds(new IndexedDataset());
  ds->prefix_ = prefix;
  const std::string idx_path = prefix + ".idx";
  const std::string bin_path = prefix + ".bin";
  ds->idx_ = std::move(idx);
  ds->bin_ = std::move(bin);

  const char* p = ds->idx_->data();
  const size_t size = ds->idx_->size();
  if (size < kMmidxHeaderBytes) {
    return Bad(
        idx_path, size,
        absl::StrFormat("truncated header: %d bytes, the header has %d", size, kMmidxHeaderBytes));
  }
  if (std::memcmp(p, kMmidxMagic, sizeof(kMmidxMagic)) != 0) {
    return Bad(idx_path, 0, "not a Megatron index: magic is not MMIDIDX\\0\\0");
  }
  const uint64_t version = LoadUnaligned<uint64_t>(p + 9);
  if (version != kMmidxVersion) {
    return Bad(idx_path, 9, absl::StrFormat("version %d, only version 1 is supported", version));
  }
  ds->dtype_code_ = static_cast<uint8_t>(p[17]);
  if (!IsTokenDType(ds->dtype_code_)) {
    return Bad(idx_path, 17,
               absl::StrFormat("dtype code %d (%s) is not an integer token type", ds->dtype_code_,
                               TokenDTypeName(ds->dtype_code_)));
  }
  ds->item_size_ = TokenDTypeSize(ds->dtype_code_);
  const uint64_t sequences = LoadUnaligned<uint64_t>(p + 18);
  const uint64_t documents = LoadUnaligned<uint64_t>(p + 26);
  // Guard the size arithmetic against absurd counts before multiplying.
  const uint64_t kMaxCount = uint64_t{1} << 40;
  if (sequences > kMaxCount) return Bad(idx_path, 18, "sequence count is absurdly large");
  if (documents > kMaxCount) return Bad(idx_path, 26, "document count is absurdly large");
  if (documents == 0) {
    return Bad(idx_path, 26, "document count is 0; document_indices must at least hold 0");
  }
  const uint64_t expected = kMmidxHeaderBytes + 12 * sequences + 8 * documents;
  if (size < expected) {
    return Bad(idx_path, size,
               absl::StrFormat("truncated: the counts (%d sequences, %d document indices) need "
                               "%d bytes, the file has %d",
                               sequences, documents, expected, size));
  }
  if (size > expected) {
    return Bad(idx_path, expected,
               absl::StrFormat("%d unexpected bytes after the document indices", size - expected));
  }
  ds->num_sequences_ = static_cast<int64_t>(sequences);
  ds->num_document_indices_ = static_cast<int64_t>(documents);
  ds->pointers_offset_ = kMmidxHeaderBytes + 4 * sequences;
  ds->documents_offset_ = kMmidxHeaderBytes + 12 * sequences;

  // Pointers must follow from the lengths.
  int64_t pointer = 0;
  for (int64_t i = 0; i < ds->num_sequences_; ++i) {
    const int32_t length = ds->sequence_length(i);
    if (length < 0) {
      return Bad(idx_path, kMmidxHeaderBytes + 4 * i,
                 absl::StrFormat("sequence %d has negative length %d", i, length));
    }
    if (ds->sequence_pointer(i) != pointer) {
      return Bad(idx_path, ds->pointers_offset_ + 8 * i,
                 absl::StrFormat("sequence %d starts at .bin byte %d, but the lengths before it "
                                 "put it at %d",
                                 i, ds->sequence_pointer(i), pointer));
    }
    pointer += static_cast<int64_t>(length) * static_cast<int64_t>(ds->item_size_);
  }
  ds->num_tokens_ = pointer / static_cast<int64_t>(ds->item_size_);
  int64_t previous = 0;
  for (int64_t i = 0; i < ds->num_document_indices_; ++i) {
    const int64_t d = ds->document_index(i);
    const uint64_t at = ds->documents_offset_ + 8 * i;
    if (i == 0 && d != 0) return Bad(idx_path, at, "document_indices must start with 0");
    if (d < previous || d > ds->num_sequences_) {
      return Bad(idx_path, at,
                 absl::StrFormat("document index %d is %d: not in [%d, %d]", i, d, previous,
                                 ds->num_sequences_));
    }
    previous = d;
  }
  if (previous != ds->num_sequences_) {
    return Bad(idx_path, ds->documents_offset_ + 8 * (ds->num_document_indices_ - 1),
               absl::StrFormat("the last document index is %d, it must equal the sequence "
                               "count %d",
                               previous, ds->num_sequences_));
  }
  if (ds->bin_->size() != static_cast<uint64_t>(pointer)) {
    return Bad(
        bin_path, std::min<uint64_t>(ds->bin_->size(), pointer),
        absl::StrFormat(
            "%s: the .bin has %d bytes but %s says %d (%d tokens of %s)",
            ds->bin_->size() < static_cast<uint64_t>(pointer) ? "truncated" : "too long",
            ds->bin_->size(), idx_path, pointer, ds->num_tokens_, TokenDTypeName(ds->dtype_code_)));
  }
  return ds;
}

void IndexedDataset::ReadTokens(int64_t sequence, int64_t offset, int64_t count,
                                int32_t* out) const {
  AOETRON_CHECK(sequence >= 0 && sequence < num_sequences_) << "sequence " << sequence;
  AOETRON_CHECK(offset >= 0 && count >= 0 && offset + count <= sequence_length(sequence))
      << "tokens [" << offset << ", " << offset + count << ") of sequence " << sequence << " with "
      << sequence_length(sequence) << " tokens";
  const char* src = bin_->data() + sequence_pointer(sequence) + offset * item_size_;
  switch (dtype_code_) {
    case 1:
      for (int64_t i = 0; i < count; ++i) out[i] = static_cast<uint8_t>(src[i]);
      break;
    case 2:
      for (int64_t i = 0; i < count; ++i) out[i] = static_cast<int8_t>(src[i]);
      break;
    case 3:
      for (int64_t i = 0; i < count; ++i) out[i] = LoadUnaligned<int16_t>(src + 2 * i);
      break;
    case 8:
      for (int64_t i = 0; i < count; ++i) out[i] = LoadUnaligned<uint16_t>(src + 2 * i);
      break;
    case 4:
      std::memcpy(out, src, static_cast<size_t>(count) * 4);
      break;
    case 5:
      // int64 token files exist in principle; ids beyond int32 are caught by CheckTokens.
      for (int64_t i = 0; i < count; ++i) {
        out[i] = static_cast<int32_t>(LoadUnaligned<int64_t>(src + 8 * i));
      }
      break;
    default:
      AOETRON_CHECK(false) << "dtype code " << int{dtype_code_};
  }
}

absl::Status IndexedDataset::CheckTokens(int64_t vocab_size, bool allow_empty_sequences) const {
  const std::string path = bin_path();
  for (int64_t s = 0; s < num_sequences_; ++s) {
    const int64_t length = sequence_length(s);
    if (length == 0 && !allow_empty_sequences) {
      return Bad(idx_path(), kMmidxHeaderBytes + 4 * s, absl::StrFormat("sequence %d is empty", s));
    }
    const char* src = bin_->data() + sequence_pointer(s);
    for (int64_t i = 0; i < length; ++i) {
      int64_t v;
      switch (dtype_code_) {
        case 1:
          v = static_cast<uint8_t>(src[i]);
          break;
        case 2:
          v = static_cast<int8_t>(src[i]);
          break;
        case 3:
          v = LoadUnaligned<int16_t>(src + 2 * i);
          break;
        case 8:
          v = LoadUnaligned<uint16_t>(src + 2 * i);
          break;
        case 4:
          v = LoadUnaligned<int32_t>(src + 4 * i);
          break;
        default:
          v = LoadUnaligned<int64_t>(src + 8 * i);
          break;
      }
      if (v < 0 || v >= vocab_size) {
        return Bad(path, sequence_pointer(s) + i * item_size_,
                   absl::StrFormat("token %d (position %d of sequence %d) is outside the "
                                   "vocabulary [0, %d)",
                                   v, i, s, vocab_size));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace aoetron::data
