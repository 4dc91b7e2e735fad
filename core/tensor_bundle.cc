#include "core/tensor_bundle.h"

#include <bit>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"

namespace aoetron {
namespace {

// The format is little-endian and we copy element bytes as they lie in memory.
static_assert(std::endian::native == std::endian::little, "tensor bundles assume little-endian");

constexpr char kMagic[8] = {'A', 'O', 'E', 'T', 'B', '1', '\0', '\0'};

std::optional<uint8_t> CodeOf(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 0;
    case DType::kF64:
      return 1;
    case DType::kI32:
      return 2;
    case DType::kI64:
      return 3;
    default:
      return std::nullopt;
  }
}

std::optional<DType> DTypeOfCode(uint8_t code) {
  switch (code) {
    case 0:
      return DType::kF32;
    case 1:
      return DType::kF64;
    case 2:
      return DType::kI32;
    case 3:
      return DType::kI64;
    default:
      return std::nullopt;
  }
}

template <typename T>
void AppendPod(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(T));
}

// Sequential reader over the whole file's bytes that reports where it ran out.
class ByteReader {
 public:
  ByteReader(const std::string& path, const std::string& bytes) : path_(path), bytes_(bytes) {}

  size_t offset() const { return offset_; }
  size_t remaining() const { return bytes_.size() - offset_; }

  absl::Status Take(void* out, size_t n, const std::string& what) {
    if (n > remaining()) {
      return absl::DataLossError(absl::StrCat(path_, ": truncated at byte offset ", offset_,
                                              " reading ", what, " (", n, " bytes wanted, ",
                                              remaining(), " left)"));
    }
    if (n > 0) std::memcpy(out, bytes_.data() + offset_, n);
    offset_ += n;
    return absl::OkStatus();
  }

  template <typename T>
  absl::Status TakePod(T& out, const std::string& what) {
    return Take(&out, sizeof(T), what);
  }

 private:
  const std::string& path_;
  const std::string& bytes_;
  size_t offset_ = 0;
};

}  // namespace

absl::Status WriteTensorBundle(const std::string& path, const NamedTensors& tensors) {
  // Validate everything first so that a bad argument leaves no half-written file.
  std::set<std::string> names;
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.defined()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor bundle ", path, ": tensor '", name, "' is undefined"));
    }
    if (!tensor.device().is_cpu()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor bundle ", path, ": tensor '", name,
                                                     "' is on ", tensor.device().ToString(),
                                                     ", only CPU tensors can be written"));
    }
    if (!CodeOf(tensor.dtype())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor bundle ", path, ": tensor '", name, "' has dtype ",
          std::string(DTypeName(tensor.dtype())), "; bundles hold f32, f64, i32 and i64"));
    }
    if (!names.insert(name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor bundle ", path, ": tensor name '", name, "' appears twice"));
    }
  }

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::InternalError(absl::StrCat("cannot open ", path, " for writing"));
  out.write(kMagic, sizeof(kMagic));
  std::string header;
  AppendPod<uint32_t>(header, static_cast<uint32_t>(tensors.size()));
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (const auto& [name, tensor] : tensors) {
    header.clear();
    AppendPod<uint32_t>(header, static_cast<uint32_t>(name.size()));
    header.append(name);
    AppendPod<uint8_t>(header, *CodeOf(tensor.dtype()));
    AppendPod<uint32_t>(header, static_cast<uint32_t>(tensor.rank()));
    for (int64_t d : tensor.shape()) AppendPod<int64_t>(header, d);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(static_cast<const char*>(tensor.raw_data()),
              static_cast<std::streamsize>(tensor.nbytes()));
  }
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("error writing tensor bundle ", path));
  return absl::OkStatus();
}

absl::StatusOr<NamedTensors> ReadTensorBundle(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open tensor bundle ", path));
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::InternalError(absl::StrCat("error reading tensor bundle ", path));

  ByteReader reader(path, bytes);
  char magic[sizeof(kMagic)];
  if (absl::Status s = reader.Take(magic, sizeof(magic), "magic"); !s.ok()) return s;
  if (std::memcmp(magic, kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError(
        absl::StrCat(path, ": bad magic at byte offset 0 (not an AOETB1 tensor bundle)"));
  }
  uint32_t count = 0;
  if (absl::Status s = reader.TakePod(count, "tensor count"); !s.ok()) return s;

  NamedTensors tensors;
  std::set<std::string> names;
  for (uint32_t index = 0; index < count; ++index) {
    const std::string which = absl::StrCat("tensor ", index);
    uint32_t name_len = 0;
    if (absl::Status s = reader.TakePod(name_len, "name length of " + which); !s.ok()) return s;
    std::string name(name_len, '\0');
    if (absl::Status s = reader.Take(name.data(), name_len, "name of " + which); !s.ok()) {
      return s;
    }
    const std::string quoted = absl::StrCat("'", name, "'");
    const size_t code_offset = reader.offset();
    uint8_t code = 0;
    uint32_t rank = 0;
    if (absl::Status s = reader.TakePod(code, "dtype of " + quoted); !s.ok()) return s;
    const std::optional<DType> dtype = DTypeOfCode(code);
    if (!dtype) {
      return absl::DataLossError(absl::StrCat(path, ": unknown dtype code ", code,
                                              " at byte offset ", code_offset, " (tensor ", quoted,
                                              ")"));
    }
    if (absl::Status s = reader.TakePod(rank, "rank of " + quoted); !s.ok()) return s;
    // Every dim takes 8 bytes, so a rank larger than the rest of the file is truncation; checking
    // it first keeps a corrupt rank from allocating a huge shape.
    if (static_cast<uint64_t>(rank) * 8 > reader.remaining()) {
      return absl::DataLossError(absl::StrCat(path, ": truncated at byte offset ", reader.offset(),
                                              " reading dims of ", quoted, " (rank ", rank, ")"));
    }
    Shape shape(rank);
    // Bytes the data needs, tracked with an overflow guard: corrupt dims must give an error,
    // not a wrapped-around size.
    uint64_t data_bytes = SizeOf(*dtype);
    bool too_big = false;
    for (uint32_t i = 0; i < rank; ++i) {
      const size_t dim_offset = reader.offset();
      if (absl::Status s = reader.TakePod(shape[i], "dims of " + quoted); !s.ok()) return s;
      if (shape[i] < 0) {
        return absl::DataLossError(absl::StrCat(path, ": negative dimension ", shape[i],
                                                " at byte offset ", dim_offset, " (tensor ", quoted,
                                                ")"));
      }
      const uint64_t d = static_cast<uint64_t>(shape[i]);
      if (d != 0 && data_bytes > std::numeric_limits<uint64_t>::max() / d) too_big = true;
      data_bytes *= d;
    }
    if (too_big || data_bytes > reader.remaining()) {
      return absl::DataLossError(absl::StrCat(
          path, ": truncated at byte offset ", reader.offset(), " reading data of ", quoted, " (",
          too_big ? std::string("an impossible size") : absl::StrCat(data_bytes, " bytes"),
          " wanted, ", reader.remaining(), " left)"));
    }
    if (!names.insert(name).second) {
      return absl::DataLossError(absl::StrCat(path, ": tensor name ", quoted,
                                              " appears twice (second at tensor ", index, ")"));
    }
    Tensor tensor = Tensor::Empty(shape, *dtype);
    if (absl::Status s = reader.Take(tensor.raw_data(), data_bytes, "data of " + quoted); !s.ok()) {
      return s;
    }
    tensors.emplace_back(std::move(name), std::move(tensor));
  }
  if (reader.remaining() != 0) {
    return absl::DataLossError(absl::StrCat(path, ": ", reader.remaining(),
                                            " trailing bytes after the last tensor at byte offset ",
                                            reader.offset()));
  }
  return tensors;
}

}  // namespace aoetron
