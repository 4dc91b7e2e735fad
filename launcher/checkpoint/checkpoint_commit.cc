#include "launcher/checkpoint/checkpoint_commit.h"

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "launcher/checkpoint/checkpoint_format.h"
#include "launcher/checkpoint/crc32c.h"
#include "launcher/checkpoint/durable_file.h"

namespace aoetron::checkpoint {

std::string TemporaryDirectory(const std::string& root, int64_t step) {
  return JoinPath(root, StepDirectoryName(step) + kTempSuffix);
}

std::string StepDirectory(const std::string& root, int64_t step) {
  return JoinPath(root, StepDirectoryName(step));
}

absl::Status PrepareTemporaryDirectory(const std::string& root, int64_t step) {
  if (absl::Status s = MakeDirectories(root); !s.ok()) return s;
  const std::string temp = TemporaryDirectory(root, step);
  if (absl::Status s = RemoveTree(temp); !s.ok()) return s;
  if (absl::Status s = MakeDirectories(temp); !s.ok()) return s;
  return SyncDirectory(root);
}

absl::StatusOr<pb::Manifest> BuildManifest(int64_t step, const pb::TrainingState& state,
                                           std::vector<pb::ShardReport> reports,
                                           uint64_t chunk_bytes) {
  pb::Manifest manifest;
  manifest.set_format_version(kFormatVersion);
  manifest.set_step(step);
  manifest.set_chunk_bytes(chunk_bytes);
  *manifest.mutable_state() = state;
  manifest.set_created_unix_seconds(static_cast<int64_t>(std::time(nullptr)));
  manifest.set_writer(absl::StrCat("aoetron checkpoint format ", kFormatVersion));
  std::map<std::string, std::vector<int>> held_not_written;  // tensor → ranks
  for (pb::ShardReport& report : reports) {
    for (const pb::TensorRecord& held : report.held_not_written()) {
      held_not_written[held.name()].push_back(report.rank());
    }
    if (!report.ok()) {
      return absl::InternalError(absl::StrCat("rank ", report.rank(), ": ", report.error()));
    }
    for (pb::FileRecord& f : *report.mutable_files()) *manifest.add_files() = std::move(f);
    for (pb::TensorRecord& t : *report.mutable_tensors()) *manifest.add_tensors() = std::move(t);
    pb::RankState* rank_state = manifest.add_rank_states();
    *rank_state = std::move(*report.mutable_rank_state());
    rank_state->set_rank(report.rank());
  }
  const std::string where = JoinPath(TemporaryDirectory("<root>", step), kManifestFileName);
  // A tensor every holder left to another replica would be silently missing from the checkpoint.
  std::set<std::string> written;
  for (const pb::TensorRecord& t : manifest.tensors()) written.insert(t.name());
  for (const auto& [name, ranks] : held_not_written) {
    if (written.count(name)) continue;
    std::string holders;
    for (int r : ranks) absl::StrAppend(&holders, holders.empty() ? "" : ", ", r);
    return absl::DataLossError(absl::StrCat(where, ": tensor '", name, "' is held by rank(s) ",
                                            holders,
                                            " but no rank wrote it (replica write flags)"));
  }
  if (absl::Status s = ValidateManifest(manifest, where); !s.ok()) return s;
  return manifest;
}

absl::Status CommitCheckpoint(const std::string& root, int64_t step, const pb::Manifest& manifest) {
  const std::string temp = TemporaryDirectory(root, step);
  const std::string final_dir = StepDirectory(root, step);
  const std::string replaced = final_dir + kReplacedSuffix;
  // a. The manifest.
  std::string bytes;
  if (!manifest.SerializeToString(&bytes)) {
    return absl::InternalError(absl::StrCat(temp, ": cannot serialize the manifest"));
  }
  if (absl::Status s = WriteFileSynced(JoinPath(temp, kManifestFileName), bytes); !s.ok()) return s;
  if (absl::Status s = SyncDirectory(temp); !s.ok()) return s;
  // b. A checkpoint of the same step from an earlier attempt steps aside.
  std::error_code ec;
  const bool had_previous = std::filesystem::exists(final_dir, ec);
  if (had_previous) {
    if (absl::Status s = RemoveTree(replaced); !s.ok()) return s;
    if (absl::Status s = Rename(final_dir, replaced); !s.ok()) return s;
  }
  // c. The new name.
  if (absl::Status s = Rename(temp, final_dir); !s.ok()) return s;
  if (absl::Status s = SyncDirectory(root); !s.ok()) return s;
  // d. The marker: the checkpoint is complete once it is durable.
  const std::string marker =
      CommitMarkerText(step, bytes.size(), Crc32c(bytes.data(), bytes.size()));
  if (absl::Status s = WriteFileSynced(JoinPath(final_dir, kCommitMarkerFileName), marker);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = SyncDirectory(final_dir); !s.ok()) return s;
  // e. The pointer.
  if (absl::Status s =
          ReplaceFileAtomically(JoinPath(root, kLatestFileName), StepDirectoryName(step) + "\n");
      !s.ok()) {
    return s;
  }
  // f. The replaced one goes.
  if (had_previous) return RemoveTree(replaced);
  return absl::OkStatus();
}

absl::Status ApplyRetention(const std::string& root, const RetentionPolicy& policy) {
  if (policy.keep_last < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint retention: keep_last is ", policy.keep_last, ", must be ≥ 1"));
  }
  std::error_code ec;
  std::vector<int64_t> complete;
  struct Leftover {
    int64_t step;
    std::string path;
  };
  std::vector<Leftover> leftovers;
  for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
    if (!entry.is_directory(ec)) continue;
    std::string name = entry.path().filename().string();
    bool is_leftover = false;
    for (const std::string suffix : {kTempSuffix, kReplacedSuffix}) {
      if (name.size() > suffix.size() && name.ends_with(suffix)) {
        name.resize(name.size() - suffix.size());
        is_leftover = true;
        break;
      }
    }
    const std::optional<int64_t> step = ParseStepDirectoryName(name);
    if (!step) continue;
    if (!is_leftover && std::filesystem::exists(entry.path() / kCommitMarkerFileName, ec)) {
      complete.push_back(*step);
    } else {
      leftovers.push_back(Leftover{*step, entry.path().string()});
    }
  }
  if (ec) return absl::InternalError(absl::StrCat(root, ": cannot list: ", ec.message()));
  if (complete.empty()) return absl::OkStatus();
  std::sort(complete.begin(), complete.end(), std::greater<>());
  const int64_t newest = complete.front();
  for (size_t i = 0; i < complete.size(); ++i) {
    const int64_t step = complete[i];
    const bool keep = static_cast<int>(i) < policy.keep_last ||
                      (policy.keep_every > 0 && step % policy.keep_every == 0);
    if (keep) continue;
    // The marker goes first: a removal cut short leaves a directory that is not loadable.
    const std::string directory = StepDirectory(root, step);
    std::filesystem::remove(JoinPath(directory, kCommitMarkerFileName), ec);
    if (absl::Status s = SyncDirectory(directory); !s.ok()) return s;
    if (absl::Status s = RemoveTree(directory); !s.ok()) return s;
  }
  for (const Leftover& leftover : leftovers) {
    if (leftover.step >= newest) continue;  // may belong to a save in progress
    if (absl::Status s = RemoveTree(leftover.path); !s.ok()) return s;
  }
  return SyncDirectory(root);
}

}  // namespace aoetron::checkpoint
