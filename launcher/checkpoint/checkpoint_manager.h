// CheckpointManager: collective, optionally asynchronous saves of sharded checkpoints into one
// root directory, with atomic commit, retention and a `latest` pointer. The consumer is the
// trainer; the loading side is checkpoint_reader.h (plus AgreeOnLatestComplete below).
//
// Typical use on every rank (parameter_checkpoint.h builds the items from a ParameterSet):
//
//     ASSIGN_OR_RETURN(auto manager, CheckpointManager::Create(
//         {.root = "runs/x/checkpoints", .retention = {.keep_last = 3, .keep_every = 1000}},
//         ctx.world()));
//     ...
//     // After optimizer step `step` (every rank, same order as every other collective call):
//     std::vector<SaveItem> items = ParameterSaveItems(params, grid, {{".adam_m", m}, ...});
//     RETURN_IF_ERROR(manager->Save(step, items, state, rank_state));  // returns after the copy
//     ...
//     RETURN_IF_ERROR(manager->Wait());  // before exit: the last save is committed
//
// Save protocol (each rank, on the manager's own communicator; checkpoint_commit.h has the
// directory-level steps): rank 0 prepares <root>/step_<N>.tmp → every rank writes and fsyncs
// rank_<R>.bin → every rank's report (records, CRCs, or its error) is all-gathered → rank 0
// builds and validates the manifest, commits (rename, COMMITTED marker, `latest`), applies
// retention → rank 0's result is broadcast. Every rank therefore returns the SAME status for a
// save: a failure on any rank (disk full, a bad item) is an error on all ranks, naming the rank
// and the file, and no rank is left waiting. The step directory becomes visible (committed) only
// when all ranks succeeded; a crash at any point leaves the previous checkpoint as the newest
// complete one.
//
// Asynchronous saves (options.async): Save validates the items and copies the written ones into a
// host snapshot (a reused buffer, memcpy on the OpenMP threads), then returns; a background
// thread writes and commits. The next Save, Wait, or the destructor joins that thread; an error
// of the background save is returned by the next Save or Wait (the new save is then not
// started). Synchronous saves do everything inside Save.
//
// Threads and communicators: the background thread makes collective calls, so the manager
// splits its own communicator from `world` at Create and never uses `world` afterwards; the
// trainer's communicators stay single-threaded. With MPI this needs MPI_THREAD_MULTIPLE
// (InitializeDistributed asks for it; pass async = false if the granted level is lower). The
// manager must be destroyed before the distributed context is finalized. A CheckpointManager is
// used by one thread (the trainer's); it is not thread-safe itself.
//
// Replicated tensors: every rank passes all its boxes; items with write = false (decided by
// AssignReplicaWriters) are checked but not written. The manifest build fails when the written
// boxes of a tensor overlap or leave a gap, so a layout bug (an expert nobody writes, a box
// written twice) fails the save instead of producing a checkpoint that cannot be loaded.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "launcher/checkpoint/checkpoint.pb.h"
#include "launcher/checkpoint/checkpoint_commit.h"
#include "launcher/checkpoint/checkpoint_format.h"
#include "launcher/checkpoint/checkpoint_reader.h"
#include "launcher/checkpoint/checkpoint_writer.h"
#include "parallel/communicator.h"

namespace aoetron::checkpoint {

struct CheckpointManagerOptions {
  std::string root;  // created if missing; one job per root
  RetentionPolicy retention;
  bool async = true;
  // Async only: Save returns before the copy; the background thread copies first (on one
  // thread), then writes. The caller must call AwaitSnapshot() before it changes any saved
  // tensor — in a trainer, before the next optimizer step (forward and backward only read the
  // weights, so the copy hides behind them). See docs/checkpoint.md for the measured stall.
  bool snapshot_in_background = false;
  // Async only: run the background thread under SCHED_IDLE (Linux), so that it takes only CPU
  // time the training threads leave idle (measured effect in docs/checkpoint.md).
  bool background_priority_idle = true;
  uint64_t chunk_bytes = kDefaultChunkBytes;  // CRC piece size
};

// Timings of the last finished save on this rank (seconds).
struct SaveStats {
  int64_t step = -1;
  double snapshot_seconds = 0;  // validation + copy, inside Save (the training stall)
  double write_seconds = 0;     // this rank's shard file, fsync included
  double commit_seconds = 0;    // gather, manifest, rename, marker, latest, retention, broadcast
  uint64_t bytes_written = 0;   // this rank's shard file
};

class CheckpointManager {
 public:
  // Collective over `world` (splits the manager's communicator). InvalidArgument for an empty
  // root or keep_last < 1 (on every rank alike).
  static absl::StatusOr<std::unique_ptr<CheckpointManager>> Create(
      const CheckpointManagerOptions& options, parallel::Communicator& world);
  // Joins a save in flight; prints its error, if any, to stderr (call Wait() to handle it).
  ~CheckpointManager();

  // Collective: saves `items` (this rank's boxes), `state` (recorded from rank 0) and
  // `rank_state` (this rank's) as <root>/step_<step>. Joins the previous save first and returns
  // its error if it failed. Sync: returns the save's status. Async: returns after the snapshot;
  // the items' tensors may change as soon as it returns.
  absl::Status Save(int64_t step, const std::vector<SaveItem>& items,
                    const pb::TrainingState& state, const pb::RankState& rank_state = {});

  // Returns when the save in flight (if any) no longer reads the caller's tensors. Only needed
  // with snapshot_in_background; otherwise Save has copied them already. Local (no collective).
  void AwaitSnapshot();

  // Joins a save in flight and returns its status (OK if none). Same status on every rank.
  absl::Status Wait();
  bool save_in_flight() const { return worker_.joinable(); }
  // The last save that finished (after Wait or the next Save).
  const SaveStats& last_stats() const { return last_stats_; }
  const CheckpointManagerOptions& options() const { return options_; }

 private:
  CheckpointManager(const CheckpointManagerOptions& options,
                    std::unique_ptr<parallel::Communicator> comm);
  // The collective part of a save (background thread or caller). `local_error`: this rank's
  // snapshot failed; it still takes part so that every rank learns the failure.
  absl::Status WriteAndCommit(int64_t step, pb::TrainingState state, pb::RankState rank_state,
                              absl::Status local_error, SaveStats stats);

  CheckpointManagerOptions options_;
  std::unique_ptr<parallel::Communicator> comm_;
  ShardSnapshot snapshot_;
  std::thread worker_;
  // Set by the worker once its snapshot is taken (snapshot_in_background).
  std::mutex snapshot_mutex_;
  std::condition_variable snapshot_taken_;
  bool snapshot_pending_ = false;
  absl::Status worker_status_;
  SaveStats worker_stats_;
  SaveStats last_stats_;
};

// Collective over `comm`: world rank 0 (group rank 0) runs FindLatestComplete and broadcasts the
// answer, so every rank resumes from the same directory and the checkpoint is read (verified)
// once, not once per rank. Warnings are collected on rank 0 only. Same status on every rank.
absl::StatusOr<std::string> AgreeOnLatestComplete(parallel::Communicator& comm,
                                                  const std::string& root,
                                                  std::vector<std::string>* warnings = nullptr,
                                                  const FindOptions& options = {});

}  // namespace aoetron::checkpoint
