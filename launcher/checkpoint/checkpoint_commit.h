// The rank-0 half of a save: turn every rank's ShardReport into a manifest and commit the step
// directory, then apply the retention policy. CheckpointManager calls these; they are public for
// tests and tools. Only one process may commit into a root directory at a time.
//
// Commit protocol (each step durable before the next; a crash anywhere leaves either the
// previous checkpoint as the newest complete one, or the new one complete):
//   0. PrepareTemporaryDirectory: remove a stale <root>/step_<N>.tmp, create it, fsync root.
//      (Then every rank writes and fsyncs its shard file into it.)
//   1. BuildManifest from the reports: every record, checked by ValidateManifest (so a save
//      that misses part of a tensor, or writes a box twice, fails here, not at load).
//   2. CommitCheckpoint:
//      a. write manifest.pb into step_<N>.tmp, fsync it and the directory;
//      b. if a step_<N> exists already (a rerun), rename it to step_<N>.old;
//      c. rename step_<N>.tmp → step_<N>, fsync root;
//      d. write COMMITTED (naming step, manifest size and CRC-32C), fsync it and step_<N>;
//         from here on the checkpoint is complete;
//      e. replace <root>/latest atomically (temp file, fsync, rename, fsync root);
//      f. remove step_<N>.old.
//   3. ApplyRetention.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "launcher/checkpoint/checkpoint.pb.h"

namespace aoetron::checkpoint {

std::string TemporaryDirectory(const std::string& root, int64_t step);  // <root>/step_<N>.tmp
std::string StepDirectory(const std::string& root, int64_t step);       // <root>/step_<N>

absl::Status PrepareTemporaryDirectory(const std::string& root, int64_t step);

// `reports` in rank order, all ok. DataLoss (from ValidateManifest) when the saved boxes are
// inconsistent: overlapping, incomplete, disagreeing on shape or dtype.
absl::StatusOr<pb::Manifest> BuildManifest(int64_t step, const pb::TrainingState& state,
                                           std::vector<pb::ShardReport> reports,
                                           uint64_t chunk_bytes);

absl::Status CommitCheckpoint(const std::string& root, int64_t step, const pb::Manifest& manifest);

struct RetentionPolicy {
  int keep_last = 2;   // the newest K complete checkpoints stay (K ≥ 1)
  int keep_every = 0;  // M > 0: complete checkpoints whose step is a multiple of M stay forever
};
// Removes complete checkpoints the policy does not keep, never the newest one, and leftovers
// older than the newest complete checkpoint: step_<N>.tmp and step_<N>.old directories and
// step_<N> directories without a marker. Errors name the directory.
absl::Status ApplyRetention(const std::string& root, const RetentionPolicy& policy);

}  // namespace aoetron::checkpoint
