#include "launcher/checkpoint/checkpoint_format.h"

#include <algorithm>
#include <map>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace aoetron::checkpoint {

std::string StepDirectoryName(int64_t step) { return absl::StrCat("step_", step); }

std::optional<int64_t> ParseStepDirectoryName(std::string_view name) {
  constexpr std::string_view kPrefix = "step_";
  if (name.size() <= kPrefix.size() || name.substr(0, kPrefix.size()) != kPrefix) {
    return std::nullopt;
  }
  const std::string_view digits = name.substr(kPrefix.size());
  if (digits.size() > 18) return std::nullopt;
  int64_t step = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    step = step * 10 + (c - '0');
  }
  return step;
}

std::string ShardFileName(int rank) { return absl::StrFormat("rank_%05d.bin", rank); }

absl::StatusOr<DType> ParseDType(std::string_view name) {
  for (DType d : {DType::kF32, DType::kF64, DType::kBF16, DType::kI32, DType::kI64, DType::kU16}) {
    if (DTypeString(d) == name) return d;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown dtype '", std::string(name), "'"));
}

Region RecordRegion(const pb::TensorRecord& record) {
  return Region{Shape(record.offset().begin(), record.offset().end()),
                Shape(record.shape().begin(), record.shape().end())};
}

TensorBox RecordBox(const pb::TensorRecord& record) {
  TensorBox box;
  box.name = record.name();
  box.dtype = ParseDType(record.dtype()).value();
  box.global_shape.assign(record.global_shape().begin(), record.global_shape().end());
  box.region = RecordRegion(record);
  return box;
}

std::string CommitMarkerText(int64_t step, uint64_t manifest_bytes, uint32_t manifest_crc32c) {
  return absl::StrFormat(
      "aoetron checkpoint committed\nstep %d\nmanifest_bytes %d\nmanifest_crc32c %08x\n", step,
      manifest_bytes, manifest_crc32c);
}

absl::StatusOr<CommitMarker> ParseCommitMarker(std::string_view text, const std::string& path) {
  auto bad = [&](const std::string& why) {
    return absl::DataLossError(absl::StrCat(path, ": not a valid commit marker (", why, ")"));
  };
  // absl's string_view is not std::string_view in this abseil; work on an absl view.
  const absl::string_view all(text.data(), text.size());
  std::vector<absl::string_view> lines = absl::StrSplit(all, '\n', absl::SkipEmpty());
  if (lines.size() != 4 || lines[0] != "aoetron checkpoint committed") return bad("header");
  auto field = [](absl::string_view line, absl::string_view key) -> absl::string_view {
    if (line.size() <= key.size() + 1 || line.substr(0, key.size()) != key ||
        line[key.size()] != ' ') {
      return absl::string_view();
    }
    return line.substr(key.size() + 1);
  };
  CommitMarker marker;
  if (!absl::SimpleAtoi(field(lines[1], "step"), &marker.step)) return bad("step");
  if (!absl::SimpleAtoi(field(lines[2], "manifest_bytes"), &marker.manifest_bytes)) {
    return bad("manifest_bytes");
  }
  if (!absl::SimpleHexAtoi(field(lines[3], "manifest_crc32c"), &marker.manifest_crc32c)) {
    return bad("manifest_crc32c");
  }
  return marker;
}

}  // namespace aoetron::checkpoint

namespace aoetron::checkpoint {

absl::Status ValidateManifest(const pb::Manifest& manifest, const std::string& where) {
  if (manifest.format_version() > kFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        where, ": format version ", manifest.format_version(),
        " was written by a newer aoetron; this build reads versions up to ", kFormatVersion,
        " (use a newer aoetron-ckpt, or resume with the build that wrote it)"));
  }
  if (manifest.format_version() == 0) {
    return absl::DataLossError(absl::StrCat(where, ": no format version (not a manifest?)"));
  }
  if (manifest.chunk_bytes() == 0) {
    return absl::DataLossError(absl::StrCat(where, ": chunk_bytes is 0"));
  }
  std::map<std::string, uint64_t> file_sizes;
  for (const pb::FileRecord& f : manifest.files()) {
    if (!file_sizes.emplace(f.name(), f.size()).second) {
      return absl::DataLossError(absl::StrCat(where, ": file '", f.name(), "' listed twice"));
    }
  }
  struct Tensor {
    const pb::TensorRecord* first = nullptr;
    std::vector<const pb::TensorRecord*> records;
    int64_t covered = 0;
  };
  std::map<std::string, Tensor> tensors;
  for (const pb::TensorRecord& r : manifest.tensors()) {
    const std::string what = absl::StrCat(where, ": tensor '", r.name(), "' (record in '", r.file(),
                                          "' at byte ", r.byte_offset(), ")");
    absl::StatusOr<DType> dtype = ParseDType(r.dtype());
    if (!dtype.ok()) return absl::DataLossError(absl::StrCat(what, ": ", dtype.status().message()));
    const Shape global(r.global_shape().begin(), r.global_shape().end());
    const Region region = RecordRegion(r);
    if (absl::Status s = ValidateRegion(region, global, what); !s.ok()) {
      return absl::DataLossError(s.message());
    }
    const uint64_t elements = static_cast<uint64_t>(RegionElements(region));
    if (r.byte_length() != elements * SizeOf(*dtype)) {
      return absl::DataLossError(absl::StrCat(what, ": ", r.byte_length(), " bytes for ", elements,
                                              " elements of ", r.dtype()));
    }
    const uint64_t pieces = (r.byte_length() + manifest.chunk_bytes() - 1) / manifest.chunk_bytes();
    if (static_cast<uint64_t>(r.chunk_crc32c_size()) != pieces) {
      return absl::DataLossError(
          absl::StrCat(what, ": ", r.chunk_crc32c_size(), " checksums for ", pieces, " pieces"));
    }
    auto file = file_sizes.find(r.file());
    if (file == file_sizes.end()) {
      return absl::DataLossError(absl::StrCat(what, ": its file is not listed in the manifest"));
    }
    if (r.byte_offset() + r.byte_length() > file->second) {
      return absl::DataLossError(absl::StrCat(what, ": bytes [", r.byte_offset(), ", ",
                                              r.byte_offset() + r.byte_length(),
                                              ") lie beyond the file's size ", file->second));
    }
    Tensor& t = tensors[r.name()];
    if (t.first == nullptr) {
      t.first = &r;
    } else if (t.first->dtype() != r.dtype() ||
               !std::equal(t.first->global_shape().begin(), t.first->global_shape().end(),
                           r.global_shape().begin(), r.global_shape().end()) ||
               t.first->kind() != r.kind()) {
      return absl::DataLossError(absl::StrCat(
          what, ": records disagree on dtype, global shape or kind (", t.first->dtype(), " ",
          ShapeToString(Shape(t.first->global_shape().begin(), t.first->global_shape().end())),
          " vs ", r.dtype(), " ", ShapeToString(global), ")"));
    }
    for (const pb::TensorRecord* other : t.records) {
      if (Intersect(RecordRegion(*other), region)) {
        return absl::DataLossError(
            absl::StrCat(where, ": tensor '", r.name(), "' is saved twice: ",
                         RegionToString(RecordRegion(*other)), " by rank ", other->writer_rank(),
                         " overlaps ", RegionToString(region), " by rank ", r.writer_rank()));
      }
    }
    t.records.push_back(&r);
    t.covered += static_cast<int64_t>(elements);
  }
  for (const auto& [name, t] : tensors) {
    const Shape global(t.first->global_shape().begin(), t.first->global_shape().end());
    if (t.covered != NumElements(global)) {
      std::string boxes;
      for (const pb::TensorRecord* r : t.records) {
        absl::StrAppend(&boxes, boxes.empty() ? "" : " ", RegionToString(RecordRegion(*r)), "@rank",
                        r->writer_rank());
      }
      return absl::DataLossError(absl::StrCat(
          where, ": tensor '", name, "' ", ShapeToString(global), ": the saved boxes cover ",
          t.covered, " of ", NumElements(global), " elements (", boxes, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace aoetron::checkpoint
