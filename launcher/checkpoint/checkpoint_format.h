// Names and constants of the checkpoint format (checkpoint.proto has the schema; docs/checkpoint.md
// the whole story), shared by the writer, the reader, the manager and aoetron-ckpt.
//
//   <root>/step_<N>.tmp/   a save in progress (never loaded; removed by the next save)
//   <root>/step_<N>/       a committed checkpoint once it holds COMMITTED
//   <root>/latest          "step_<N>\n": the newest committed checkpoint (a hint: readers fall
//                          back to scanning when it is missing or points at something broken)
//   <root>/step_<N>.old/   a checkpoint of the same step being replaced (never loaded)
// N is written without padding ("step_1200"); directories sort by the parsed number.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/dtype.h"
#include "launcher/checkpoint/checkpoint.pb.h"
#include "launcher/checkpoint/sharded_tensor.h"

namespace aoetron::checkpoint {

// Version 1: this layout. A reader refuses manifests with a larger format_version.
inline constexpr uint32_t kFormatVersion = 1;

inline constexpr char kManifestFileName[] = "manifest.pb";
inline constexpr char kCommitMarkerFileName[] = "COMMITTED";
inline constexpr char kLatestFileName[] = "latest";
inline constexpr char kTempSuffix[] = ".tmp";
inline constexpr char kReplacedSuffix[] = ".old";

// Byte alignment of every record inside a shard file (keeps vector loads aligned after a read
// into an aligned buffer; 64 B costs at most 63 B per record).
inline constexpr uint64_t kRecordAlignment = 64;
// Default piece size of the per-record CRC-32C list.
inline constexpr uint64_t kDefaultChunkBytes = uint64_t{4} << 20;

std::string StepDirectoryName(int64_t step);  // "step_<N>"
// N for "step_<N>" (digits only, no sign, no suffix); nullopt for anything else.
std::optional<int64_t> ParseStepDirectoryName(std::string_view name);
std::string ShardFileName(int rank);  // "rank_00003.bin"

// DTypeName as a std::string (absl::StrCat in this abseil does not take std::string_view).
inline std::string DTypeString(DType dtype) { return std::string(DTypeName(dtype)); }
// "f32" → DType::kF32, ...; InvalidArgument for an unknown name.
absl::StatusOr<DType> ParseDType(std::string_view name);

// The box a record describes, and its region.
TensorBox RecordBox(const pb::TensorRecord& record);  // dtype must parse (validated manifest)
Region RecordRegion(const pb::TensorRecord& record);

// The commit marker's text: names the step and the manifest's byte size and CRC-32C, so a
// marker proves which manifest was committed.
std::string CommitMarkerText(int64_t step, uint64_t manifest_bytes, uint32_t manifest_crc32c);
struct CommitMarker {
  int64_t step = -1;
  uint64_t manifest_bytes = 0;
  uint32_t manifest_crc32c = 0;
};
// DataLoss naming `path` when the text is not a marker written by CommitMarkerText.
absl::StatusOr<CommitMarker> ParseCommitMarker(std::string_view text, const std::string& path);

}  // namespace aoetron::checkpoint

namespace aoetron::checkpoint {

// Checks everything about a manifest that does not need the shard files: format version (a
// newer one is FailedPrecondition: "written by a newer aoetron"), every record's dtype, shape
// ranks, region inside the global shape, byte length = elements × dtype size, CRC piece count,
// its file listed and the byte range inside the file's recorded size; per tensor name one dtype,
// global shape and kind; no two records of a tensor overlap; together they cover every element
// exactly once. Errors are DataLoss (or FailedPrecondition for the version) and start with
// `where` (the manifest's path) and name the tensor.
absl::Status ValidateManifest(const pb::Manifest& manifest, const std::string& where);

}  // namespace aoetron::checkpoint
