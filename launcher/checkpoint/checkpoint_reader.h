// Reading a committed checkpoint, under any parallel layout.
//
//     ASSIGN_OR_RETURN(std::string dir, FindLatestComplete(root, &warnings));
//     ASSIGN_OR_RETURN(CheckpointReader reader, CheckpointReader::Open(dir));
//     std::vector<ReadRequest> wanted = ...;  // the boxes THIS rank needs, with destinations
//     RETURN_IF_ERROR(reader.Read(wanted));   // all or nothing
//
// Resharding: a request names a tensor and a region of its global shape; Read assembles it from
// the overlapping parts of whatever boxes were saved (tp2·ep2 → 1 process, ep4 → ep2·dp2, a
// ZeRO-1 flat range → whole boxes...). Nothing about the saving layout is needed.
//
// Guarantees of Read:
//  - Incompatible model: a tensor the checkpoint lacks is NotFound naming it; another global
//    shape (another d_model, expert count, vocabulary) or dtype is InvalidArgument naming the
//    tensor and both shapes.
//  - Every element of every request is covered exactly once by saved boxes (Open proved the
//    saved boxes are disjoint and complete), and every byte read is checked against its CRC-32C
//    piece; a mismatch is DataLoss naming the file, the tensor and the byte range.
//  - Never a half-loaded model: by default (ReadOptions::staging) everything is read and verified
//    into staging buffers first and copied into the destinations only when all succeeded; on
//    error the destinations are untouched. staging = false saves the memory of one copy of the
//    requests and then gives no such guarantee.
//
// Thread safety: a reader is immutable after Open; Read and Verify may run concurrently.
#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "launcher/checkpoint/checkpoint.pb.h"
#include "launcher/checkpoint/sharded_tensor.h"

namespace aoetron::checkpoint {

// One box to fill: the tensor and region wanted, and where the elements go.
struct ReadRequest {
  TensorBox box;
  // CPU, contiguous, dtype == box.dtype, numel == the region's element count.
  Tensor destination;
};

struct ReadOptions {
  bool staging = true;
};

// What the checkpoint holds of one tensor.
struct SavedTensor {
  std::string name;
  DType dtype = DType::kF32;
  pb::TensorKind kind = pb::KIND_UNSPECIFIED;
  Shape global_shape;
  std::vector<int> records;  // indices into manifest().tensors()
};

class CheckpointReader {
 public:
  // Opens a step directory (<root>/step_<N>). Checks, without reading tensor bytes: the commit
  // marker exists and names this manifest (size and CRC-32C), the manifest parses, its format
  // version is not newer than ours (FailedPrecondition), ValidateManifest, and every shard file
  // exists with exactly its recorded size. Errors name the file (and tensor where one is at
  // fault): FailedPrecondition "not committed" without a marker, DataLoss for corrupt or
  // truncated files, NotFound for missing ones.
  static absl::StatusOr<CheckpointReader> Open(const std::string& step_directory);

  const std::string& directory() const { return directory_; }
  const pb::Manifest& manifest() const { return manifest_; }
  int64_t step() const { return manifest_.step(); }
  const pb::TrainingState& state() const { return manifest_.state(); }
  // Rank r's per-rank state as saved (null when the saving job had no rank r).
  const pb::RankState* rank_state(int rank) const;

  // Saved tensors by name (sorted by name).
  const std::map<std::string, SavedTensor>& tensors() const { return tensors_; }
  const SavedTensor* Find(const std::string& name) const;

  // Fills every request (see the file comment for the guarantees).
  absl::Status Read(std::span<const ReadRequest> requests, const ReadOptions& options = {}) const;

  // Reads every record of every file and checks every CRC-32C piece; coverage and disjointness
  // were checked by Open. Returns the problems found (empty: all good), each naming file and
  // tensor, and adds the bytes checked to *bytes_checked when given.
  std::vector<std::string> Verify(uint64_t* bytes_checked = nullptr) const;

 private:
  CheckpointReader() = default;
  // Reads `length` bytes at `offset` (relative to the record) of record `r` into `out` (which
  // holds the whole record), `offset` and `length` rounded out to whole CRC pieces, and checks
  // each piece.
  absl::Status ReadRecordRange(int r, uint64_t offset, uint64_t length, uint8_t* out) const;

  std::string directory_;
  pb::Manifest manifest_;
  std::map<std::string, SavedTensor> tensors_;
};

// Options of FindLatestComplete.
struct FindOptions {
  // Also read every byte and check every CRC (CheckpointReader::Verify) of a candidate before
  // accepting it: a checkpoint with a flipped bit then makes `--resume auto` fall back to the
  // previous one instead of failing at load. Costs one read of the checkpoint (the load that
  // follows then mostly hits the page cache).
  bool verify_checksums = true;
};

// The newest complete checkpoint under `root`: the step_<N> directory with the largest N that
// CheckpointReader::Open accepts (and Verify, with verify_checksums). `<root>/latest` is not
// trusted: a crash between the marker and the pointer leaves a newer complete checkpoint, and a
// damaged newest checkpoint must not hide an older good one. Every candidate skipped adds a line
// to *warnings ("skipping <dir>: <why>"). NotFound when there is none (the message says whether
// the root is missing, empty, or held only broken checkpoints).
absl::StatusOr<std::string> FindLatestComplete(const std::string& root,
                                               std::vector<std::string>* warnings = nullptr,
                                               const FindOptions& options = {});

// Either a step directory (holds manifest.pb or COMMITTED) or a root (then FindLatestComplete).
absl::StatusOr<std::string> ResolveCheckpointPath(const std::string& path,
                                                  std::vector<std::string>* warnings = nullptr,
                                                  const FindOptions& options = {});

}  // namespace aoetron::checkpoint
