#include "parallel/process_grid.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace aoetron::parallel {

const char* GroupKindName(GroupKind kind) {
  switch (kind) {
    case GroupKind::kTensorParallel:
      return "tp";
    case GroupKind::kDataParallel:
      return "dp";
    case GroupKind::kExpertParallel:
      return "ep";
    case GroupKind::kExpertDataParallel:
      return "edp";
  }
  return "?";
}

absl::StatusOr<ProcessGrid> ProcessGrid::Create(int world_size, int rank, int tp, int ep) {
  if (tp < 1) {
    return absl::InvalidArgumentError(absl::StrCat("parallel.tp=", tp, " must be at least 1"));
  }
  if (ep < 1) {
    return absl::InvalidArgumentError(absl::StrCat("parallel.ep=", ep, " must be at least 1"));
  }
  if (world_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("world size ", world_size, " must be at least 1"));
  }
  if (world_size % tp != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("parallel.tp=", tp, " must divide the world size ", world_size));
  }
  const int dp = world_size / tp;
  if (dp % ep != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("parallel.ep=", ep, " must divide the data-parallel size ", dp, " (world ",
                     world_size, " / parallel.tp ", tp, ")"));
  }
  if (rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " is outside the world of ", world_size, " ranks"));
  }
  return ProcessGrid(world_size, rank, tp, ep);
}

int ProcessGrid::WorldRank(int tp_rank, int ep_rank, int expert_dp_rank) const {
  return tp_rank + tp_ * (ep_rank + ep_ * expert_dp_rank);
}

int ProcessGrid::GroupSize(GroupKind kind) const {
  switch (kind) {
    case GroupKind::kTensorParallel:
      return tp_;
    case GroupKind::kDataParallel:
      return dp_;
    case GroupKind::kExpertParallel:
      return ep_;
    case GroupKind::kExpertDataParallel:
      return dp_ / ep_;
  }
  return 1;
}

GroupMembership ProcessGrid::Group(GroupKind kind) const {
  GroupMembership group;
  const int t = tp_rank();
  const int e = ep_rank();
  const int k = expert_dp_rank();
  switch (kind) {
    case GroupKind::kTensorParallel:
      group.index = dp_rank();
      group.rank_in_group = t;
      for (int i = 0; i < tp_; ++i) group.members.push_back(WorldRank(i, e, k));
      break;
    case GroupKind::kDataParallel:
      group.index = t;
      group.rank_in_group = dp_rank();
      for (int kk = 0; kk < dp_ / ep_; ++kk) {
        for (int ee = 0; ee < ep_; ++ee) group.members.push_back(WorldRank(t, ee, kk));
      }
      break;
    case GroupKind::kExpertParallel:
      // Numbered by (expert_dp_rank, tp_rank) so that groups on lower ranks come first.
      group.index = k * tp_ + t;
      group.rank_in_group = e;
      for (int ee = 0; ee < ep_; ++ee) group.members.push_back(WorldRank(t, ee, k));
      break;
    case GroupKind::kExpertDataParallel:
      group.index = e * tp_ + t;
      group.rank_in_group = k;
      for (int kk = 0; kk < dp_ / ep_; ++kk) group.members.push_back(WorldRank(t, e, kk));
      break;
  }
  return group;
}

absl::StatusOr<ExpertShard> ProcessGrid::LocalExperts(int num_experts) const {
  if (num_experts < 1 || num_experts % ep_ != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the number of experts ", num_experts,
                     " must be a positive multiple of parallel.ep=", ep_));
  }
  const int per_rank = num_experts / ep_;
  return ExpertShard{ep_rank() * per_rank, per_rank};
}

std::string ProcessGrid::DebugString() const {
  return absl::StrCat("rank ", rank_, " of ", world_size_, ": tp ", tp_rank(), "/", tp_, ", dp ",
                      dp_rank(), "/", dp_, ", ep ", ep_rank(), "/", ep_, ", edp ", expert_dp_rank(),
                      "/", dp_ / ep_);
}

}  // namespace aoetron::parallel
