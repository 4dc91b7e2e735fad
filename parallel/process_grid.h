// ProcessGrid: where each rank sits in the tp × ep × expert-dp layout, and which ranks form each
// process group. A pure function of (world size, rank, tp, ep): no MPI, unit-testable.
// CreateProcessGroups (process_groups.h) turns it into communicators.
//
// Layout. world = tp × dp, and ep divides dp: expert weights are sharded over ep ranks and
// replicated over expert_dp = dp / ep ("expert-data-parallel") copies. Ranks are numbered with
// tp fastest, then ep, then the expert-dp replica (Megatron's "tp-ep-dp" order), which keeps a
// tp group, then an ep group, on neighbouring ranks (one node, when ranks fill nodes in order):
//
//     rank     = tp_rank + tp · dp_rank
//     dp_rank  = ep_rank + ep · expert_dp_rank
//
// Groups (every rank belongs to exactly one group of each kind; members in ascending world rank,
// which is also their rank inside the group):
//   tp   TensorParallel      same dp_rank: the tp consecutive ranks that split one layer's
//                            weights. Size tp.
//   dp   DataParallel        same tp_rank: every rank holding the same tensor-parallel shard.
//                            Gradients of replicated (non-expert) parameters and the aux loss's
//                            global statistics are reduced here. Size dp.
//   ep   ExpertParallel      same tp_rank and expert_dp_rank: ep consecutive dp ranks inside one
//                            replica block, which exchange tokens (all-to-all) and together hold
//                            every expert once. Size ep.
//   edp  ExpertDataParallel  same tp_rank and ep_rank: the ranks holding the same experts, where
//                            expert gradients are reduced. Size dp / ep.
//
// Worked example, world 8, tp 2, ep 2 (dp 4, expert_dp 2):
//     rank            0  1  2  3  4  5  6  7
//     tp_rank         0  1  0  1  0  1  0  1
//     dp_rank         0  0  1  1  2  2  3  3
//     ep_rank         0  0  1  1  0  0  1  1
//     expert_dp_rank  0  0  0  0  1  1  1  1
//   tp groups   {0,1} {2,3} {4,5} {6,7}
//   dp groups   {0,2,4,6} {1,3,5,7}
//   ep groups   {0,2} {1,3} {4,6} {5,7}
//   edp groups  {0,4} {1,5} {2,6} {3,7}
// With 8 experts, ep_rank 0 (ranks 0,1,4,5) owns experts 0–3 and ep_rank 1 owns 4–7.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace aoetron::parallel {

enum class GroupKind { kTensorParallel, kDataParallel, kExpertParallel, kExpertDataParallel };
inline constexpr GroupKind kAllGroupKinds[] = {GroupKind::kTensorParallel, GroupKind::kDataParallel,
                                               GroupKind::kExpertParallel,
                                               GroupKind::kExpertDataParallel};
// Short name used for communicators and messages: "tp", "dp", "ep", "edp".
const char* GroupKindName(GroupKind kind);

// One rank's group of one kind.
struct GroupMembership {
  int index = 0;             // which group of this kind, in [0, number of such groups)
  int rank_in_group = 0;     // this rank's position in `members`
  std::vector<int> members;  // world ranks, ascending (= group rank order)
};

// The experts a rank holds: [first, first + count).
struct ExpertShard {
  int first = 0;
  int count = 0;
};

class ProcessGrid {
 public:
  // Validates the layout and places `rank`. Errors (InvalidArgument, naming the config fields):
  // tp or ep < 1, world size < 1, world not divisible by tp, dp not divisible by ep, rank
  // outside [0, world).
  static absl::StatusOr<ProcessGrid> Create(int world_size, int rank, int tp, int ep);

  int world_size() const { return world_size_; }
  int rank() const { return rank_; }
  int tp_size() const { return tp_; }
  int dp_size() const { return dp_; }
  int ep_size() const { return ep_; }
  int expert_dp_size() const { return dp_ / ep_; }

  int tp_rank() const { return rank_ % tp_; }
  int dp_rank() const { return rank_ / tp_; }
  int ep_rank() const { return dp_rank() % ep_; }
  int expert_dp_rank() const { return dp_rank() / ep_; }

  // World rank of the process at these coordinates (each in range).
  int WorldRank(int tp_rank, int ep_rank, int expert_dp_rank) const;

  // This rank's group of `kind`.
  GroupMembership Group(GroupKind kind) const;
  int GroupSize(GroupKind kind) const;
  // How many disjoint groups of `kind` the world is cut into (world / GroupSize).
  int NumGroups(GroupKind kind) const { return world_size_ / GroupSize(kind); }

  // The experts this rank holds when the model has `num_experts` experts: a contiguous block
  // of num_experts / ep, the ep_rank-th. InvalidArgument unless ep divides num_experts.
  absl::StatusOr<ExpertShard> LocalExperts(int num_experts) const;

  // "rank 5 of 8: tp 1/2, dp 2/4, ep 0/2, edp 1/2"
  std::string DebugString() const;

 private:
  ProcessGrid(int world_size, int rank, int tp, int ep)
      : world_size_(world_size), rank_(rank), tp_(tp), dp_(world_size / tp), ep_(ep) {}

  int world_size_;
  int rank_;
  int tp_;
  int dp_;
  int ep_;
};

}  // namespace aoetron::parallel
