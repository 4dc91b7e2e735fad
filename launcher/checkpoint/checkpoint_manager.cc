#include "launcher/checkpoint/checkpoint_manager.h"

#include <pthread.h>
#include <sched.h>

#include <cstring>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "core/timing.h"
#include "launcher/checkpoint/durable_file.h"
#include "parallel/string_collectives.h"

namespace aoetron::checkpoint {
using parallel::AllGatherStrings;
using parallel::BroadcastStatus;
using parallel::BroadcastString;

absl::StatusOr<std::unique_ptr<CheckpointManager>> CheckpointManager::Create(
    const CheckpointManagerOptions& options, parallel::Communicator& world) {
  if (options.root.empty()) {
    return absl::InvalidArgumentError("checkpoint manager: the root directory is empty");
  }
  if (options.retention.keep_last < 1 || options.retention.keep_every < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint manager: keep_last must be ≥ 1 and keep_every ≥ 0, got ",
                     options.retention.keep_last, " and ", options.retention.keep_every));
  }
  if (options.chunk_bytes == 0) {
    return absl::InvalidArgumentError("checkpoint manager: chunk_bytes is 0");
  }
  std::unique_ptr<parallel::Communicator> comm = world.Split(0, world.rank(), "checkpoint");
  return std::unique_ptr<CheckpointManager>(new CheckpointManager(options, std::move(comm)));
}

CheckpointManager::CheckpointManager(const CheckpointManagerOptions& options,
                                     std::unique_ptr<parallel::Communicator> comm)
    : options_(options), comm_(std::move(comm)) {}

CheckpointManager::~CheckpointManager() {
  const absl::Status status = Wait();
  if (!status.ok()) {
    std::cerr << "checkpoint manager: the last save failed: " << status << std::endl;
  }
}

absl::Status CheckpointManager::Wait() {
  if (worker_.joinable()) {
    worker_.join();
    last_stats_ = worker_stats_;
  }
  return std::exchange(worker_status_, absl::OkStatus());
}

void CheckpointManager::AwaitSnapshot() {
  std::unique_lock<std::mutex> lock(snapshot_mutex_);
  snapshot_taken_.wait(lock, [this] { return !snapshot_pending_; });
}

absl::Status CheckpointManager::Save(int64_t step, const std::vector<SaveItem>& items,
                                     const pb::TrainingState& state,
                                     const pb::RankState& rank_state) {
  if (absl::Status previous = Wait(); !previous.ok()) return previous;
  SaveStats stats;
  stats.step = step;
  const int rank = comm_->world_rank();
  const auto start = SteadyClock::now();
  absl::Status local = step < 0 ? absl::InvalidArgumentError(absl::StrCat(
                                      "checkpoint manager: step ", step, " is negative"))
                                : absl::OkStatus();
  const bool background_copy = options_.async && options_.snapshot_in_background;
  if (local.ok()) {
    local = background_copy ? ValidateSaveItems(items, rank) : snapshot_.Snapshot(items, rank);
  }
  stats.snapshot_seconds = SecondsSince(start);
  if (!options_.async) {
    absl::Status status = WriteAndCommit(step, state, rank_state, local, stats);
    last_stats_ = worker_stats_;
    return status;
  }
  if (background_copy && local.ok()) {
    std::lock_guard<std::mutex> lock(snapshot_mutex_);
    snapshot_pending_ = true;
  }
  // The items (tensor handles) are copied into the thread; their elements are read only until
  // the snapshot is taken.
  worker_ = std::thread(
      [this, step, state, rank_state, local, stats, background_copy, rank,
       items = background_copy && local.ok() ? items : std::vector<SaveItem>()]() mutable {
        if (background_copy && local.ok()) {
          const auto copy_start = SteadyClock::now();
          local = snapshot_.Snapshot(items, rank, /*threads=*/1);
          stats.snapshot_seconds += SecondsSince(copy_start);
          items.clear();
          {
            std::lock_guard<std::mutex> lock(snapshot_mutex_);
            snapshot_pending_ = false;
          }
          snapshot_taken_.notify_all();
        }
        // The copy ran at normal priority (the trainer waits for it); the writer then yields the
        // CPU to training: under SCHED_IDLE it runs only on otherwise idle cores, so the compute
        // threads (an OpenMP team waits for its slowest member) are not preempted by it.
        if (options_.background_priority_idle) {
          sched_param idle{};
          pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle);
        }
        worker_status_ = WriteAndCommit(step, state, rank_state, local, stats);
      });
  return absl::OkStatus();
}

absl::Status CheckpointManager::WriteAndCommit(int64_t step, pb::TrainingState state,
                                               pb::RankState rank_state, absl::Status local_error,
                                               SaveStats stats) {
  parallel::Communicator& comm = *comm_;
  const int rank = comm.world_rank();
  // 1. Rank 0 prepares the temporary directory; everyone learns whether it could.
  absl::Status prepared;
  if (comm.rank() == 0) prepared = PrepareTemporaryDirectory(options_.root, step);
  prepared = BroadcastStatus(comm, prepared);
  if (!prepared.ok()) {
    worker_stats_ = stats;
    return absl::Status(prepared.code(),
                        absl::StrCat("checkpoint step ", step, ": rank 0: ", prepared.message()));
  }
  // 2. This rank's shard.
  const auto write_start = SteadyClock::now();
  pb::ShardReport report;
  if (local_error.ok()) {
    absl::StatusOr<pb::ShardReport> written = snapshot_.WriteShard(
        TemporaryDirectory(options_.root, step), ShardFileName(rank), options_.chunk_bytes);
    if (written.ok()) {
      report = std::move(*written);
    } else {
      local_error = written.status();
    }
  }
  stats.write_seconds = SecondsSince(write_start);
  stats.bytes_written = local_error.ok() ? snapshot_.bytes() : 0;
  report.set_rank(rank);
  report.set_ok(local_error.ok());
  if (!local_error.ok()) report.set_error(std::string(local_error.message()));
  *report.mutable_rank_state() = std::move(rank_state);
  report.mutable_rank_state()->set_rank(rank);
  // 3. Every report to every rank; the first failure is everyone's error.
  const auto commit_start = SteadyClock::now();
  std::string serialized;
  report.SerializeToString(&serialized);
  std::vector<std::string> gathered = AllGatherStrings(comm, serialized);
  std::vector<pb::ShardReport> reports(gathered.size());
  absl::Status failure;
  for (size_t r = 0; r < gathered.size(); ++r) {
    if (!reports[r].ParseFromString(gathered[r])) {
      failure = absl::InternalError(absl::StrCat("rank ", r, "'s shard report does not parse"));
    } else if (!reports[r].ok() && failure.ok()) {
      failure =
          absl::InternalError(absl::StrCat("rank ", reports[r].rank(), ": ", reports[r].error()));
    }
  }
  // 4. Rank 0 commits (or cleans up); its result is everyone's.
  absl::Status committed;
  if (comm.rank() == 0) {
    if (!failure.ok()) {
      RemoveTree(TemporaryDirectory(options_.root, step)).IgnoreError();
      committed = failure;
    } else {
      absl::StatusOr<pb::Manifest> manifest =
          BuildManifest(step, state, std::move(reports), options_.chunk_bytes);
      committed =
          manifest.ok() ? CommitCheckpoint(options_.root, step, *manifest) : manifest.status();
      if (!manifest.ok()) RemoveTree(TemporaryDirectory(options_.root, step)).IgnoreError();
      if (committed.ok()) {
        absl::Status retained = ApplyRetention(options_.root, options_.retention);
        if (!retained.ok()) {
          committed = absl::Status(
              retained.code(),
              absl::StrCat("committed, but removing old checkpoints failed: ", retained.message()));
        }
      } else if (manifest.ok()) {
        committed = absl::Status(committed.code(),
                                 absl::StrCat("rank 0: commit failed: ", committed.message()));
      }
    }
  }
  committed = BroadcastStatus(comm, committed);
  stats.commit_seconds = SecondsSince(commit_start);
  worker_stats_ = stats;
  if (!committed.ok()) {
    return absl::Status(committed.code(), absl::StrCat("checkpoint step ", step, " in ",
                                                       options_.root, ": ", committed.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> AgreeOnLatestComplete(parallel::Communicator& comm,
                                                  const std::string& root,
                                                  std::vector<std::string>* warnings,
                                                  const FindOptions& options) {
  absl::StatusOr<std::string> found = absl::InternalError("unset");
  if (comm.rank() == 0) found = FindLatestComplete(root, warnings, options);
  const absl::Status status = BroadcastStatus(comm, found.status());
  const std::string path = BroadcastString(comm, found.ok() ? *found : std::string());
  if (!status.ok()) return status;
  return path;
}

}  // namespace aoetron::checkpoint
