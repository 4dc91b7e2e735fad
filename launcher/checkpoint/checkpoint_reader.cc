#include "launcher/checkpoint/checkpoint_reader.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "launcher/checkpoint/checkpoint_format.h"
#include "launcher/checkpoint/crc32c.h"
#include "launcher/checkpoint/durable_file.h"

namespace aoetron::checkpoint {
namespace {

// Verify reads records in windows of this many bytes (rounded down to whole CRC pieces).
constexpr uint64_t kVerifyWindowBytes = uint64_t{64} << 20;

// Row-major flat index, inside `box`, of the global coordinates `at`.
int64_t FlatIndex(const Region& box, const Shape& at) {
  int64_t index = 0;
  for (size_t d = 0; d < at.size(); ++d) index = index * box.shape[d] + (at[d] - box.offset[d]);
  return index;
}

// Record indices ordered by (file, byte offset): reads then walk each file forwards.
std::vector<int> FileOrder(const pb::Manifest& manifest, std::vector<int> records) {
  std::sort(records.begin(), records.end(), [&](int a, int b) {
    const pb::TensorRecord& x = manifest.tensors(a);
    const pb::TensorRecord& y = manifest.tensors(b);
    if (x.file() != y.file()) return x.file() < y.file();
    return x.byte_offset() < y.byte_offset();
  });
  return records;
}

}  // namespace

absl::StatusOr<CheckpointReader> CheckpointReader::Open(const std::string& step_directory) {
  std::error_code ec;
  if (!std::filesystem::is_directory(step_directory, ec)) {
    return absl::NotFoundError(absl::StrCat(step_directory, ": no such checkpoint directory"));
  }
  CheckpointReader reader;
  reader.directory_ = step_directory;
  // 1. The marker.
  const std::string marker_path = JoinPath(step_directory, kCommitMarkerFileName);
  absl::StatusOr<std::string> marker_text = ReadFileToString(marker_path);
  if (!marker_text.ok()) {
    if (absl::IsNotFound(marker_text.status())) {
      return absl::FailedPreconditionError(
          absl::StrCat(step_directory, ": not committed (no ", kCommitMarkerFileName,
                       " marker): an interrupted or incomplete save, never loaded"));
    }
    return marker_text.status();
  }
  absl::StatusOr<CommitMarker> marker = ParseCommitMarker(*marker_text, marker_path);
  if (!marker.ok()) return marker.status();
  // 2. The manifest, as the marker describes it.
  const std::string manifest_path = JoinPath(step_directory, kManifestFileName);
  absl::StatusOr<std::string> bytes = ReadFileToString(manifest_path);
  if (!bytes.ok()) return bytes.status();
  const uint32_t crc = Crc32c(bytes->data(), bytes->size());
  if (bytes->size() != marker->manifest_bytes || crc != marker->manifest_crc32c) {
    return absl::DataLossError(absl::StrFormat(
        "%s: %d bytes with CRC-32C %08x, but %s names %d bytes with CRC-32C %08x (corrupt "
        "manifest)",
        manifest_path, bytes->size(), crc, kCommitMarkerFileName, marker->manifest_bytes,
        marker->manifest_crc32c));
  }
  if (!reader.manifest_.ParseFromString(*bytes)) {
    return absl::DataLossError(absl::StrCat(manifest_path, ": does not parse as a manifest"));
  }
  if (absl::Status s = ValidateManifest(reader.manifest_, manifest_path); !s.ok()) return s;
  if (reader.manifest_.step() != marker->step) {
    return absl::DataLossError(absl::StrCat(manifest_path, ": step ", reader.manifest_.step(),
                                            ", but the marker says step ", marker->step));
  }
  // 3. Every shard file, exactly its size.
  for (const pb::FileRecord& f : reader.manifest_.files()) {
    const std::string path = JoinPath(step_directory, f.name());
    std::string holds;
    int listed = 0;
    for (const pb::TensorRecord& t : reader.manifest_.tensors()) {
      if (t.file() != f.name()) continue;
      if (listed < 3) absl::StrAppend(&holds, listed ? ", " : "", "'", t.name(), "'");
      ++listed;
    }
    if (listed > 3) absl::StrAppend(&holds, " and ", listed - 3, " more");
    const uintmax_t size = std::filesystem::file_size(path, ec);
    if (ec) {
      const std::string message =
          absl::StrCat(path, ": shard file of rank ", f.writer_rank(),
                       " is missing or unreadable (", ec.message(), "); it holds tensors ", holds);
      return ec == std::errc::no_such_file_or_directory ? absl::NotFoundError(message)
                                                        : absl::DataLossError(message);
    }
    if (size != f.size()) {
      return absl::DataLossError(absl::StrCat(
          path, ": ", size, " bytes, the manifest says ", f.size(),
          size < f.size() ? " (truncated)" : " (corrupt)", "; it holds tensors ", holds));
    }
  }
  // 4. The index by name.
  for (int r = 0; r < reader.manifest_.tensors_size(); ++r) {
    const pb::TensorRecord& t = reader.manifest_.tensors(r);
    SavedTensor& saved = reader.tensors_[t.name()];
    if (saved.records.empty()) {
      saved.name = t.name();
      saved.dtype = ParseDType(t.dtype()).value();
      saved.kind = t.kind();
      saved.global_shape.assign(t.global_shape().begin(), t.global_shape().end());
    }
    saved.records.push_back(r);
  }
  return reader;
}

const pb::RankState* CheckpointReader::rank_state(int rank) const {
  for (const pb::RankState& s : manifest_.rank_states()) {
    if (s.rank() == rank) return &s;
  }
  return nullptr;
}

const SavedTensor* CheckpointReader::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

absl::Status CheckpointReader::ReadRecordRange(int r, uint64_t offset, uint64_t length,
                                               uint8_t* out) const {
  const pb::TensorRecord& record = manifest_.tensors(r);
  const uint64_t chunk = manifest_.chunk_bytes();
  const uint64_t first_piece = offset / chunk;
  const uint64_t end_piece = (offset + length + chunk - 1) / chunk;
  const uint64_t begin = first_piece * chunk;
  const uint64_t end = std::min(record.byte_length(), end_piece * chunk);
  const std::string path = JoinPath(directory_, record.file());
  absl::StatusOr<FileDescriptor> file = FileDescriptor::OpenForRead(path);
  if (!file.ok()) return file.status();
  if (absl::Status s = file->ReadAt(out + begin, end - begin, record.byte_offset() + begin);
      !s.ok()) {
    return absl::DataLossError(absl::StrCat(s.message(), " while reading tensor '", record.name(),
                                            "' ", RegionToString(RecordRegion(record))));
  }
  for (uint64_t piece = first_piece; piece < end_piece; ++piece) {
    const uint64_t piece_begin = piece * chunk;
    const uint64_t piece_end = std::min(record.byte_length(), piece_begin + chunk);
    const uint32_t crc = Crc32c(out + piece_begin, piece_end - piece_begin);
    if (crc != record.chunk_crc32c(static_cast<int>(piece))) {
      return absl::DataLossError(absl::StrFormat(
          "%s: tensor '%s' %s: bytes [%d, %d) of the file fail their checksum (CRC-32C %08x, "
          "saved %08x)",
          path, record.name(), RegionToString(RecordRegion(record)),
          record.byte_offset() + piece_begin, record.byte_offset() + piece_end, crc,
          record.chunk_crc32c(static_cast<int>(piece))));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckpointReader::Read(std::span<const ReadRequest> requests,
                                    const ReadOptions& options) const {
  // 1. Plan: which part of which saved record lands in which request.
  struct Piece {
    size_t request;
    Region region;
  };
  std::map<int, std::vector<Piece>> pieces_of_record;
  for (size_t i = 0; i < requests.size(); ++i) {
    const ReadRequest& request = requests[i];
    const TensorBox& box = request.box;
    const SavedTensor* saved = Find(box.name);
    if (saved == nullptr) {
      return absl::NotFoundError(absl::StrCat(directory_, ": the checkpoint has no tensor '",
                                              box.name, "' (it holds ", tensors_.size(),
                                              " tensors; another model?)"));
    }
    if (saved->global_shape != box.global_shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          directory_, ": tensor '", box.name, "' has shape ", ShapeToString(saved->global_shape),
          " in the checkpoint but ", ShapeToString(box.global_shape),
          " in the model (another model configuration?)"));
    }
    if (saved->dtype != box.dtype) {
      return absl::InvalidArgumentError(
          absl::StrCat(directory_, ": tensor '", box.name, "' is ", DTypeString(saved->dtype),
                       " in the checkpoint but ", DTypeString(box.dtype), " in the request"));
    }
    if (absl::Status s =
            ValidateRegion(box.region, box.global_shape, absl::StrCat("read of '", box.name, "'"));
        !s.ok()) {
      return s;
    }
    const Tensor& d = request.destination;
    if (!d.defined() || !d.device().is_cpu() || d.dtype() != box.dtype ||
        d.numel() != RegionElements(box.region)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "read of '", box.name, "' ", RegionToString(box.region), ": destination is ",
          d.defined() ? d.DebugString() : "undefined", ", needs ", RegionElements(box.region),
          " elements of ", DTypeString(box.dtype), " on the cpu"));
    }
    int64_t covered = 0;
    for (int r : saved->records) {
      std::optional<Region> common = Intersect(RecordRegion(manifest_.tensors(r)), box.region);
      if (!common) continue;
      covered += RegionElements(*common);
      pieces_of_record[r].push_back(Piece{i, *common});
    }
    if (covered != RegionElements(box.region)) {  // Open proved coverage; a bug if reached
      return absl::DataLossError(absl::StrCat(
          directory_, ": tensor '", box.name, "' ", RegionToString(box.region),
          ": saved boxes cover ", covered, " of ", RegionElements(box.region), " elements"));
    }
  }
  // 2. Where the elements go first: the destinations, or views of one staging buffer (huge
  //    pages: first-touch faults would otherwise cost as much as the copy).
  std::vector<Tensor> targets(requests.size());
  HostBuffer staging;
  if (options.staging) {
    uint64_t total = 0;
    std::vector<uint64_t> offsets(requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      offsets[i] = total;
      total += (requests[i].destination.nbytes() + 63) / 64 * 64;
    }
    staging = AllocateHostBuffer(total);
    if (staging == nullptr) {
      return absl::ResourceExhaustedError(absl::StrCat(directory_, ": cannot allocate ", total,
                                                       " bytes of staging memory for the read"));
    }
    for (size_t i = 0; i < requests.size(); ++i) {
      targets[i] = Tensor::Wrap(staging.get() + offsets[i], requests[i].destination.shape(),
                                requests[i].box.dtype);
    }
  } else {
    for (size_t i = 0; i < requests.size(); ++i) targets[i] = requests[i].destination;
  }
  // 3. Read each needed record (only the CRC pieces the requests touch), check, scatter.
  std::vector<int> records;
  for (const auto& [r, unused] : pieces_of_record) records.push_back(r);
  for (int r : FileOrder(manifest_, records)) {
    const pb::TensorRecord& record = manifest_.tensors(r);
    const Region record_region = RecordRegion(record);
    const size_t element = SizeOf(ParseDType(record.dtype()).value());
    const std::vector<Piece>& pieces = pieces_of_record[r];
    // Fast path: the whole record lands in one request as a contiguous run of its elements
    // (same box, or whole rows of it): read straight into the target, check the CRCs there.
    if (pieces.size() == 1 && pieces[0].region == record_region) {
      const Region& into = requests[pieces[0].request].box.region;
      bool contiguous = true;
      for (size_t d = 1; d < into.shape.size(); ++d) {
        contiguous = contiguous && into.offset[d] == record_region.offset[d] &&
                     into.shape[d] == record_region.shape[d];
      }
      if (contiguous) {
        uint8_t* target = static_cast<uint8_t*>(targets[pieces[0].request].raw_data()) +
                          FlatIndex(into, record_region.offset) * element;
        if (absl::Status s = ReadRecordRange(r, 0, record.byte_length(), target); !s.ok()) {
          return s;
        }
        continue;
      }
    }
    uint64_t first = record.byte_length(), last = 0;  // bytes [first, last) are needed
    for (const Piece& p : pieces) {
      Shape end(p.region.offset);
      for (size_t d = 0; d < end.size(); ++d) end[d] += p.region.shape[d] - 1;
      first = std::min<uint64_t>(first, FlatIndex(record_region, p.region.offset) * element);
      last = std::max<uint64_t>(last, (FlatIndex(record_region, end) + 1) * element);
    }
    // The whole record's address range; only the pages read are ever touched.
    std::unique_ptr<uint8_t[]> buffer(new uint8_t[std::max<uint64_t>(record.byte_length(), 1)]);
    if (absl::Status s = ReadRecordRange(r, first, last - first, buffer.get()); !s.ok()) return s;
    for (const Piece& p : pieces) {
      CopyRegion(buffer.get(), record_region, targets[p.request].raw_data(),
                 requests[p.request].box.region, p.region, element);
    }
  }
  // 4. Commit.
  if (options.staging) {
    for (size_t i = 0; i < requests.size(); ++i) {
      std::memcpy(const_cast<Tensor&>(requests[i].destination).raw_data(), targets[i].raw_data(),
                  targets[i].nbytes());
    }
  }
  return absl::OkStatus();
}

std::vector<std::string> CheckpointReader::Verify(uint64_t* bytes_checked) const {
  std::vector<std::string> problems;
  std::vector<int> all(manifest_.tensors_size());
  for (int r = 0; r < manifest_.tensors_size(); ++r) all[r] = r;
  const uint64_t chunk = manifest_.chunk_bytes();
  const uint64_t window = std::max<uint64_t>(chunk, kVerifyWindowBytes / chunk * chunk);
  uint64_t checked = 0;
  std::unique_ptr<uint8_t[]> buffer;
  uint64_t capacity = 0;
  for (int r : FileOrder(manifest_, all)) {
    const pb::TensorRecord& record = manifest_.tensors(r);
    if (record.byte_length() > capacity) {
      capacity = record.byte_length();
      buffer.reset(new uint8_t[capacity]);
    }
    for (uint64_t at = 0; at < record.byte_length(); at += window) {
      const uint64_t n = std::min(window, record.byte_length() - at);
      if (absl::Status s = ReadRecordRange(r, at, n, buffer.get()); !s.ok()) {
        problems.push_back(std::string(s.message()));
        break;
      }
      checked += n;
    }
  }
  if (bytes_checked != nullptr) *bytes_checked += checked;
  return problems;
}

absl::StatusOr<std::string> FindLatestComplete(const std::string& root,
                                               std::vector<std::string>* warnings,
                                               const FindOptions& options) {
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec)) {
    return absl::NotFoundError(absl::StrCat(root, ": no such checkpoint directory"));
  }
  std::vector<int64_t> steps;
  for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
    if (!entry.is_directory(ec)) continue;
    if (std::optional<int64_t> step = ParseStepDirectoryName(entry.path().filename().string())) {
      steps.push_back(*step);
    }
  }
  if (ec) return absl::InternalError(absl::StrCat(root, ": cannot list: ", ec.message()));
  std::sort(steps.begin(), steps.end(), std::greater<>());
  for (int64_t step : steps) {
    const std::string directory = JoinPath(root, StepDirectoryName(step));
    absl::StatusOr<CheckpointReader> reader = CheckpointReader::Open(directory);
    std::string why;
    if (!reader.ok()) {
      why = std::string(reader.status().message());
    } else if (options.verify_checksums) {
      std::vector<std::string> problems = reader->Verify();
      if (!problems.empty()) {
        why = problems.front();
        if (problems.size() > 1) absl::StrAppend(&why, " (and ", problems.size() - 1, " more)");
      }
    }
    if (why.empty()) return directory;
    if (warnings != nullptr) warnings->push_back(absl::StrCat("skipping ", directory, ": ", why));
  }
  return absl::NotFoundError(absl::StrCat(
      root, steps.empty() ? ": holds no checkpoint (no step_<N> directory)"
                          : absl::StrCat(": none of its ", steps.size(),
                                         " step directories is a complete checkpoint")));
}

absl::StatusOr<std::string> ResolveCheckpointPath(const std::string& path,
                                                  std::vector<std::string>* warnings,
                                                  const FindOptions& options) {
  std::error_code ec;
  if (std::filesystem::exists(JoinPath(path, kCommitMarkerFileName), ec) ||
      std::filesystem::exists(JoinPath(path, kManifestFileName), ec) ||
      ParseStepDirectoryName(std::filesystem::path(path).filename().string())) {
    return path;
  }
  return FindLatestComplete(path, warnings, options);
}

}  // namespace aoetron::checkpoint
