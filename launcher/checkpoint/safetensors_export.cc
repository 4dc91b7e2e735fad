#include "launcher/checkpoint/safetensors_export.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/ops/elementwise.h"
#include "launcher/checkpoint/durable_file.h"

namespace aoetron::checkpoint {
namespace {

std::string SafetensorsDType(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF64:
      return "F64";
    case DType::kBF16:
      return "BF16";
    case DType::kI32:
      return "I32";
    case DType::kI64:
      return "I64";
    case DType::kU16:
      return "U16";
  }
  return "?";
}

// JSON string literal (names are ASCII in practice; control characters are escaped anyway).
std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

struct Planned {
  const SavedTensor* tensor;
  uint64_t bytes;  // as written
  DType written;
};

}  // namespace

bool NaturalLess(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) &&
        std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t i_end = i, j_end = j;
      while (i_end < a.size() && std::isdigit(static_cast<unsigned char>(a[i_end]))) ++i_end;
      while (j_end < b.size() && std::isdigit(static_cast<unsigned char>(b[j_end]))) ++j_end;
      // Compare as numbers: strip leading zeros, then by length, then lexicographically.
      size_t i0 = i, j0 = j;
      while (i0 + 1 < i_end && a[i0] == '0') ++i0;
      while (j0 + 1 < j_end && b[j0] == '0') ++j0;
      if (i_end - i0 != j_end - j0) return i_end - i0 < j_end - j0;
      const int c = a.compare(i0, i_end - i0, b, j0, j_end - j0);
      if (c != 0) return c < 0;
      i = i_end;
      j = j_end;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

absl::StatusOr<ExportSummary> ExportSafetensors(const CheckpointReader& reader,
                                                const std::string& out_directory,
                                                const ExportOptions& options) {
  // 1. Which tensors, in which order, in which file.
  std::vector<Planned> tensors;
  if (options.float_dtype != DType::kF32 && options.float_dtype != DType::kBF16) {
    return absl::InvalidArgumentError(absl::StrCat("export dtype must be f32 or bf16, got ",
                                                   std::string(DTypeName(options.float_dtype))));
  }
  for (const auto& [name, saved] : reader.tensors()) {
    if (!options.include_all_kinds && saved.kind != pb::KIND_PARAMETER) continue;
    const bool floating = saved.dtype == DType::kF32 || saved.dtype == DType::kF64;
    const DType written = floating ? options.float_dtype : saved.dtype;
    tensors.push_back(Planned{
        &saved, static_cast<uint64_t>(NumElements(saved.global_shape)) * SizeOf(written), written});
  }
  if (tensors.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(reader.directory(), ": no parameter tensors to export"));
  }
  std::sort(tensors.begin(), tensors.end(), [](const Planned& a, const Planned& b) {
    return NaturalLess(a.tensor->name, b.tensor->name);
  });
  std::vector<std::vector<Planned>> shards(1);
  uint64_t shard_bytes = 0;
  for (const Planned& t : tensors) {
    if (!shards.back().empty() && shard_bytes + t.bytes > options.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(t);
    shard_bytes += t.bytes;
  }
  if (absl::Status s = MakeDirectories(out_directory); !s.ok()) return s;

  // 2. Each file: header, then every tensor assembled from its boxes.
  ExportSummary summary;
  std::string weight_map;
  for (size_t k = 0; k < shards.size(); ++k) {
    const std::string file_name =
        absl::StrFormat("model-%05d-of-%05d.safetensors", k + 1, shards.size());
    std::string header = absl::StrCat(
        "{\"__metadata__\":{\"format\":\"pt\",\"producer\":\"aoetron-ckpt export\",\"step\":\"",
        reader.step(), "\",\"weight_layout\":\"[in, out]: y = x @ W\"}");
    uint64_t offset = 0;
    for (const Planned& t : shards[k]) {
      std::string shape;
      for (size_t d = 0; d < t.tensor->global_shape.size(); ++d) {
        absl::StrAppend(&shape, d ? "," : "", t.tensor->global_shape[d]);
      }
      absl::StrAppend(&header, ",", JsonString(t.tensor->name), ":{\"dtype\":\"",
                      SafetensorsDType(t.written), "\",\"shape\":[", shape, "],\"data_offsets\":[",
                      offset, ",", offset + t.bytes, "]}");
      offset += t.bytes;
      absl::StrAppend(&weight_map, weight_map.empty() ? "" : ",\n    ", JsonString(t.tensor->name),
                      ": ", JsonString(file_name));
    }
    header += "}";
    header.append((8 - header.size() % 8) % 8, ' ');
    const std::string path = JoinPath(out_directory, file_name);
    absl::StatusOr<FileDescriptor> file = FileDescriptor::Create(path);
    if (!file.ok()) return file.status();
    uint64_t header_size = header.size();  // little-endian on every supported machine
    if (absl::Status s = file->WriteAll(&header_size, 8); !s.ok()) return s;
    if (absl::Status s = file->WriteAll(header.data(), header.size()); !s.ok()) return s;
    for (const Planned& t : shards[k]) {
      Tensor whole = Tensor::Empty(t.tensor->global_shape, t.tensor->dtype);
      ReadRequest request{TensorBox{t.tensor->name, t.tensor->dtype, t.tensor->global_shape,
                                    WholeRegion(t.tensor->global_shape)},
                          whole};
      // No staging: `whole` is ours and discarded on error.
      if (absl::Status s = reader.Read({&request, 1}, ReadOptions{.staging = false}); !s.ok()) {
        return s;
      }
      if (t.written != whole.dtype()) {
        Tensor narrowed = Tensor::Empty(whole.shape(), t.written);
        ops::Convert(whole, narrowed);
        whole = narrowed;
      }
      if (absl::Status s = file->WriteAll(whole.raw_data(), whole.nbytes()); !s.ok()) return s;
      ++summary.tensors;
      summary.total_bytes += t.bytes;
    }
    if (absl::Status s = file->Sync(); !s.ok()) return s;
    if (absl::Status s = file->Close(); !s.ok()) return s;
    summary.files.push_back(path);
  }
  const std::string index =
      absl::StrCat("{\n  \"metadata\": {\"total_size\": ", summary.total_bytes,
                   "},\n  \"weight_map\": {\n    ", weight_map, "\n  }\n}\n");
  const std::string index_path = JoinPath(out_directory, "model.safetensors.index.json");
  if (absl::Status s = WriteFileSynced(index_path, index); !s.ok()) return s;
  summary.files.push_back(index_path);
  if (!options.config_json.empty()) {
    const std::string config_path = JoinPath(out_directory, "config.json");
    if (absl::Status s = WriteFileSynced(config_path, options.config_json); !s.ok()) return s;
    summary.files.push_back(config_path);
  }
  return summary;
}

}  // namespace aoetron::checkpoint
