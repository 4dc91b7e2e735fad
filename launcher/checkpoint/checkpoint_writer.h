// The rank-side half of a save: snapshot this rank's boxes into host memory, then write them as
// one shard file with per-piece CRC-32C, and describe what was written (a pb::ShardReport).
// The rank-0 half (manifest, commit, retention) is checkpoint_commit.h; CheckpointManager
// (checkpoint_manager.h) runs both, collectively, usually on a background thread.
//
// Shard file layout (rank_<R>.bin): the records of this rank back to back in the order given,
// each starting at a multiple of kRecordAlignment bytes, zero padding between them; no header
// (the manifest says where everything is).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "launcher/checkpoint/checkpoint.pb.h"
#include "launcher/checkpoint/durable_file.h"
#include "launcher/checkpoint/sharded_tensor.h"

namespace aoetron::checkpoint {

// One box this rank holds, as handed to a save.
struct SaveItem {
  TensorBox box;
  pb::TensorKind kind = pb::KIND_PARAMETER;
  // The box's elements: a CPU tensor, contiguous, dtype == box.dtype, numel == the region's
  // element count (its shape may be anything with that count). Read only during Snapshot().
  Tensor values;
  // false when another rank holding the identical box writes it (replicated tensors: decide with
  // AssignReplicaWriters so every rank writes a similar share). Such items are checked but not
  // copied.
  bool write = true;
};

// InvalidArgument naming the item (and `rank`) unless every item is well formed: a non-empty
// name, a region inside its global shape, values defined, on the CPU, of the box's dtype and
// element count; no two written items of the same name whose regions overlap.
absl::Status ValidateSaveItems(const std::vector<SaveItem>& items, int rank);

// A host copy of the written items, laid out exactly as the shard file will be. Reused across
// saves: Snapshot() keeps the buffer when it is large enough (no page faults on the hot path).
// Not thread-safe; the manager hands it to one thread at a time.
class ShardSnapshot {
 public:
  ShardSnapshot() = default;
  ShardSnapshot(const ShardSnapshot&) = delete;
  ShardSnapshot& operator=(const ShardSnapshot&) = delete;

  // Validates `items` (ValidateSaveItems) and copies the written ones into the buffer (memcpy,
  // spread over `threads` OpenMP threads; 0: all of them). After it returns the caller may
  // change its tensors.
  absl::Status Snapshot(const std::vector<SaveItem>& items, int rank, int threads = 0);

  // Writes the snapshot to `path` (create/truncate, fsync), computing the CRC-32C of every
  // `chunk_bytes` piece of every record. Returns the records and the file (names relative to
  // the step directory: `file_name`), and the boxes held but not written. Writes no file when
  // the snapshot holds no record.
  // Errors name the path and, for data errors, the tensor.
  absl::StatusOr<pb::ShardReport> WriteShard(const std::string& directory,
                                             const std::string& file_name,
                                             uint64_t chunk_bytes) const;

  uint64_t bytes() const { return file_bytes_; }
  int rank() const { return rank_; }
  size_t records() const { return records_.size(); }

 private:
  struct Record {
    TensorBox box;
    pb::TensorKind kind;
    uint64_t byte_offset;
    uint64_t byte_length;
  };
  HostBuffer buffer_;
  uint64_t capacity_ = 0;
  uint64_t file_bytes_ = 0;
  int rank_ = 0;
  std::vector<Record> records_;
  std::vector<Record> held_not_written_;  // byte fields unused
};

}  // namespace aoetron::checkpoint
