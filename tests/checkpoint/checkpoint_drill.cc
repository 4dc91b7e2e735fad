// checkpoint_drill: the process side of run_kill_drill.sh (SIGKILL during saves).
//
//   checkpoint_drill save   DIR   saves steps N+1, N+2, ... back to back (async, keep_last 2)
//                                 until killed, N the newest complete checkpoint's step (0 if
//                                 none); step N holds version-N values of a ~8 MB set
//                                 (a row-split tensor, replicated tensors, experts); each rank
//                                 writes its pid to DIR/pid.<rank> first
//   checkpoint_drill resume DIR   every rank: AgreeOnLatestComplete, read every tensor whole and
//                                 check it is exactly version N where N is the checkpoint's step,
//                                 then save step N + 1 and check it became the latest
// Exit 0 on success; any failure ends the job through AbortAll with a message.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "launcher/checkpoint/checkpoint_manager.h"
#include "parallel/abort.h"
#include "parallel/distributed.h"
#include "tests/checkpoint/checkpoint_test_util.h"

namespace aoetron::checkpoint {
namespace {

constexpr int64_t kRows = 1 << 17;  // "big": [kRows, 16] f32 = 8 MiB, split by rows

std::vector<SaveItem> Items(int rank, int world, int64_t version) {
  std::vector<SaveItem> items;
  items.push_back(testing::MakeItem(
      testing::RowsBox("big", {kRows, 16}, rank * kRows / world, (rank + 1) * kRows / world),
      version));
  for (int k = 0; k < 3; ++k) {
    items.push_back(testing::MakeItem(testing::WholeBox("replicated." + std::to_string(k), {64, 8}),
                                      version, k % world == rank));
  }
  for (int e = rank; e < 8; e += world) {
    items.push_back(testing::MakeItem(
        testing::WholeBox("experts." + std::to_string(e) + ".w", {32, 16}), version));
  }
  return items;
}

std::vector<TensorBox> AllBoxes() {
  std::vector<TensorBox> boxes = {testing::WholeBox("big", {kRows, 16})};
  for (int k = 0; k < 3; ++k)
    boxes.push_back(testing::WholeBox("replicated." + std::to_string(k), {64, 8}));
  for (int e = 0; e < 8; ++e)
    boxes.push_back(testing::WholeBox("experts." + std::to_string(e) + ".w", {32, 16}));
  return boxes;
}

void Check(bool ok, const std::string& what) {
  if (!ok) parallel::AbortAll("checkpoint_drill: " + what);
}

int Run(parallel::DistributedContext& ctx, const std::string& mode, const std::string& dir) {
  parallel::Communicator& world = ctx.world();
  const int rank = world.rank(), size = world.size();
  absl::StatusOr<std::unique_ptr<CheckpointManager>> manager =
      CheckpointManager::Create({.root = dir, .retention = {.keep_last = 2}, .async = true}, world);
  Check(manager.ok(), std::string(manager.status().message()));
  if (mode == "save") {
    // Like a resumed run: continue after the newest complete checkpoint.
    int64_t first = 1;
    if (absl::StatusOr<std::string> latest = AgreeOnLatestComplete(world, dir); latest.ok()) {
      absl::StatusOr<CheckpointReader> reader = CheckpointReader::Open(*latest);
      Check(reader.ok(), std::string(reader.status().message()));
      first = reader->step() + 1;
    }
    std::ofstream(dir + "/pid." + std::to_string(rank)) << getpid() << "\n";
    for (int64_t step = first;; ++step) {
      pb::TrainingState state;
      state.set_step(step);
      state.mutable_layout()->set_world_size(size);
      const absl::Status s = (*manager)->Save(step, Items(rank, size, step), state);
      Check(s.ok(), std::string(s.message()));
    }
  }
  Check(mode == "resume", "mode must be save or resume, got " + mode);
  std::vector<std::string> warnings;
  absl::StatusOr<std::string> latest = AgreeOnLatestComplete(world, dir, &warnings);
  for (const std::string& w : warnings) std::cout << "rank " << rank << ": warning: " << w << "\n";
  Check(latest.ok(), "no checkpoint to resume from: " + std::string(latest.status().message()));
  absl::StatusOr<CheckpointReader> reader = CheckpointReader::Open(*latest);
  Check(reader.ok(), std::string(reader.status().message()));
  const int64_t step = reader->step();
  Check(reader->state().step() == step, "state.step differs from the manifest's step");
  for (const TensorBox& box : AllBoxes()) {
    Tensor t = Tensor::Empty(box.region.shape, box.dtype);
    ReadRequest request{box, t};
    const absl::Status s = reader->Read({&request, 1});
    Check(s.ok(), std::string(s.message()));
    const ::testing::AssertionResult same = testing::HoldsBox(t, box, step);
    Check(static_cast<bool>(same),
          std::string("step ") + std::to_string(step) + ": " + same.message());
  }
  if (rank == 0)
    std::cout << "resumed from " << *latest << " (step " << step << "): every tensor exact\n";
  pb::TrainingState state;
  state.set_step(step + 1);
  Check((*manager)->Save(step + 1, Items(rank, size, step + 1), state).ok(), "save after resume");
  Check((*manager)->Wait().ok(), "save after resume");
  absl::StatusOr<std::string> next = AgreeOnLatestComplete(world, dir);
  Check(next.ok() && std::filesystem::path(*next).filename() == StepDirectoryName(step + 1),
        "the save after resume is not the latest");
  if (rank == 0) std::cout << "saved step " << step + 1 << " after resuming\n";
  return 0;
}

}  // namespace
}  // namespace aoetron::checkpoint

int main(int argc, char** argv) {
  using namespace aoetron;
  absl::StatusOr<parallel::DistributedContext> ctx = parallel::InitializeDistributed(&argc, &argv);
  if (!ctx.ok()) {
    std::cerr << ctx.status() << "\n";
    return 1;
  }
  if (argc != 3) parallel::AbortAll("usage: checkpoint_drill save|resume DIR");
  const int rc = checkpoint::Run(*ctx, argv[1], argv[2]);
  if (!ctx->Finalize().ok()) return 1;
  return rc;
}
