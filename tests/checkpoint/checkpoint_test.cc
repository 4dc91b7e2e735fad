// The checkpoint library in one process (SingleProcessCommunicator): save/load round trips,
// resharded reads, the manager's sync and async saves, retention, bad input of every kind.
// Multi-rank behaviour is in checkpoint_mpi_test.cc.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <set>

#include "launcher/checkpoint/checkpoint_commit.h"
#include "launcher/checkpoint/checkpoint_format.h"
#include "launcher/checkpoint/checkpoint_manager.h"
#include "launcher/checkpoint/checkpoint_reader.h"
#include "launcher/checkpoint/crc32c.h"
#include "launcher/checkpoint/durable_file.h"
#include "parallel/single_process_communicator.h"
#include "tests/checkpoint/checkpoint_test_util.h"

namespace aoetron::checkpoint {
namespace {

using testing::ColumnsBox;
using testing::HoldsBox;
using testing::MakeItem;
using testing::RowsBox;
using testing::ScratchDirectory;
using testing::WholeBox;

namespace fs = std::filesystem;

#define EXPECT_STATUS_MENTIONS(status, text)                               \
  EXPECT_NE(std::string((status).message()).find(text), std::string::npos) \
      << "status: " << (status) << "\nexpected to mention: " << (text)

// The set saved by most tests, as one process would write a 2-way layout of it:
//   "w" [8, 6] f32 in two row boxes, "c" [6, 8] f64 in two column boxes (uneven: 0:3, 3:8),
//   "b" [10] bf16, "ids" [3, 5] i64 whole, "scalar" [] f32, "w.adam_m" like "w" (optimizer).
std::vector<SaveItem> SyntheticItems(int64_t version) {
  return {
      MakeItem(RowsBox("w", {8, 6}, 0, 4), version),
      MakeItem(RowsBox("w", {8, 6}, 4, 8), version),
      MakeItem(ColumnsBox("c", {6, 8}, 0, 3, DType::kF64), version),
      MakeItem(ColumnsBox("c", {6, 8}, 3, 8, DType::kF64), version),
      MakeItem(WholeBox("b", {10}, DType::kBF16), version),
      MakeItem(WholeBox("ids", {3, 5}, DType::kI64), version, true, pb::KIND_OTHER),
      MakeItem(WholeBox("scalar", {}, DType::kF32), version),
      MakeItem(RowsBox("w.adam_m", {8, 6}, 0, 8), version, true, pb::KIND_OPTIMIZER_STATE),
  };
}

pb::TrainingState SomeState(int64_t step) {
  pb::TrainingState state;
  state.set_step(step);
  state.set_consumed_samples(step * 32);
  state.set_schedule_step(step);
  state.set_seed(1234);
  state.set_data_position(step * 4);
  state.set_config_text("model { d_model: 32 }");
  state.mutable_layout()->set_world_size(1);
  state.mutable_layout()->set_tp(1);
  (*state.mutable_counters())["skipped_steps"] = 2;
  (*state.mutable_blobs())["loader"] = std::string("\x01\x02\x00\x03", 4);
  return state;
}

struct Saver {
  parallel::SingleProcessCommunicator world;
  std::unique_ptr<CheckpointManager> manager;

  explicit Saver(const std::string& root, bool async = false, RetentionPolicy retention = {},
                 uint64_t chunk_bytes = kDefaultChunkBytes) {
    absl::StatusOr<std::unique_ptr<CheckpointManager>> m = CheckpointManager::Create(
        {.root = root, .retention = retention, .async = async, .chunk_bytes = chunk_bytes}, world);
    AOETRON_CHECK(m.ok()) << m.status();
    manager = std::move(*m);
  }
  absl::Status Save(int64_t step, int64_t version) {
    pb::RankState rank_state;
    (*rank_state.mutable_blobs())["rng"] = "rank-zero-rng-" + std::to_string(step);
    absl::Status s = manager->Save(step, SyntheticItems(version), SomeState(step), rank_state);
    if (!s.ok()) return s;
    return manager->Wait();
  }
};

// Reads `box` from `reader` into a fresh tensor.
absl::StatusOr<Tensor> ReadBox(const CheckpointReader& reader, const TensorBox& box) {
  Tensor t = Tensor::Empty(box.region.shape, box.dtype);
  ReadRequest request{box, t};
  if (absl::Status s = reader.Read({&request, 1}); !s.ok()) return s;
  return t;
}

TEST(Checkpoint, SaveThenLoadTheSameBoxes) {
  ScratchDirectory dir("roundtrip");
  Saver saver(dir.path());
  ASSERT_TRUE(saver.Save(5, 5).ok());
  absl::StatusOr<CheckpointReader> reader = CheckpointReader::Open(StepDirectory(dir.path(), 5));
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(reader->step(), 5);
  EXPECT_EQ(reader->tensors().size(), 6u);
  for (const SaveItem& item : SyntheticItems(5)) {
    absl::StatusOr<Tensor> t = ReadBox(*reader, item.box);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_TRUE(HoldsBox(*t, item.box, 5));
  }
  // State and per-rank state.
  EXPECT_EQ(reader->state().consumed_samples(), 5 * 32);
  EXPECT_EQ(reader->state().config_text(), "model { d_model: 32 }");
  EXPECT_EQ(reader->state().counters().at("skipped_steps"), 2);
  EXPECT_EQ(reader->state().blobs().at("loader"), std::string("\x01\x02\x00\x03", 4));
  ASSERT_NE(reader->rank_state(0), nullptr);
  EXPECT_EQ(reader->rank_state(0)->blobs().at("rng"), "rank-zero-rng-5");
  EXPECT_EQ(reader->rank_state(1), nullptr);
  EXPECT_EQ(reader->Find("w.adam_m")->kind, pb::KIND_OPTIMIZER_STATE);
  // Pointer and marker.
  EXPECT_EQ(testing::ReadFile(dir.path() + "/latest"), "step_5\n");
  EXPECT_TRUE(fs::exists(StepDirectory(dir.path(), 5) + "/COMMITTED"));
  EXPECT_FALSE(fs::exists(TemporaryDirectory(dir.path(), 5)));
  EXPECT_TRUE(reader->Verify().empty());
}

TEST(Checkpoint, ReshardedReadsAssembleAnyRegion) {
  ScratchDirectory dir("reshard");
  // Small CRC pieces so that partial reads read (and check) only some of them.
  Saver saver(dir.path(), false, {}, /*chunk_bytes=*/16);
  ASSERT_TRUE(saver.Save(1, 7).ok());
  absl::StatusOr<CheckpointReader> reader = CheckpointReader::Open(StepDirectory(dir.path(), 1));
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::vector<TensorBox> wanted = {
      WholeBox("w", {8, 6}),          // rows 0:4 and 4:8 joined
      RowsBox("w", {8, 6}, 3, 5),     // across the boundary
      ColumnsBox("w", {8, 6}, 1, 4),  // columns of a row split
      TensorBox{"w", DType::kF32, {8, 6}, Region{{2, 1}, {5, 4}}},
      RowsBox("c", {6, 8}, 0, 3, DType::kF64),  // rows of a column split
      RowsBox("c", {6, 8}, 3, 6, DType::kF64),
      TensorBox{"c", DType::kF64, {6, 8}, Region{{1, 2}, {1, 5}}},
      TensorBox{"b", DType::kBF16, {10}, Region{{3}, {4}}},
      TensorBox{"ids", DType::kI64, {3, 5}, Region{{1, 1}, {2, 3}}},
      WholeBox("scalar", {}),
  };
  // All in one Read call, and each alone.
  std::vector<Tensor> outputs;
  std::vector<ReadRequest> requests;
  for (const TensorBox& box : wanted) {
    outputs.push_back(Tensor::Empty(box.region.shape, box.dtype));
    requests.push_back(ReadRequest{box, outputs.back()});
  }
  ASSERT_TRUE(reader->Read(requests).ok());
  for (size_t i = 0; i < wanted.size(); ++i) EXPECT_TRUE(HoldsBox(outputs[i], wanted[i], 7));
  for (const TensorBox& box : wanted) {
    absl::StatusOr<Tensor> t = ReadBox(*reader, box);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_TRUE(HoldsBox(*t, box, 7));
  }
}

TEST(Checkpoint, IncompatibleModelsAreRefusedNamingTheTensor) {
  ScratchDirectory dir("incompatible");
  Saver saver(dir.path());
  ASSERT_TRUE(saver.Save(1, 1).ok());
  absl::StatusOr<CheckpointReader> reader = CheckpointReader::Open(StepDirectory(dir.path(), 1));
  ASSERT_TRUE(reader.ok());
  absl::StatusOr<Tensor> shape = ReadBox(*reader, WholeBox("w", {8, 7}));
  ASSERT_FALSE(shape.ok());
  EXPECT_EQ(shape.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_STATUS_MENTIONS(shape.status(), "'w' has shape [8, 6] in the checkpoint but [8, 7]");
  absl::StatusOr<Tensor> missing = ReadBox(*reader, WholeBox("layers.0.ffn.experts.9.w_up", {4}));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_STATUS_MENTIONS(missing.status(), "'layers.0.ffn.experts.9.w_up'");
  absl::StatusOr<Tensor> dtype = ReadBox(*reader, WholeBox("w", {8, 6}, DType::kF64));
  ASSERT_FALSE(dtype.ok());
  EXPECT_STATUS_MENTIONS(dtype.status(), "'w' is f32 in the checkpoint but f64");
}

TEST(Checkpoint, SavesThatMissOrRepeatElementsFailAndCommitNothing) {
  ScratchDirectory dir("coverage");
  Saver saver(dir.path());
  ASSERT_TRUE(saver.Save(1, 1).ok());
  // A gap: only rows 0:4 of "w" written (e.g. the other replica thought it was not its turn).
  std::vector<SaveItem> gap = SyntheticItems(2);
  gap[1].write = false;
  absl::Status s = saver.manager->Save(2, gap, SomeState(2));
  ASSERT_FALSE(s.ok());
  EXPECT_STATUS_MENTIONS(s, "tensor 'w' [8, 6]: the saved boxes cover 24 of 48 elements");
  // An overlap within one rank.
  std::vector<SaveItem> overlap = SyntheticItems(2);
  overlap.push_back(MakeItem(RowsBox("w", {8, 6}, 2, 3), 2));
  s = saver.manager->Save(2, overlap, SomeState(2));
  ASSERT_FALSE(s.ok());
  EXPECT_STATUS_MENTIONS(s, "'w' is written twice");
  // A box with the wrong number of elements.
  std::vector<SaveItem> wrong = SyntheticItems(2);
  wrong[0].values = Tensor::Zeros({3, 6}, DType::kF32);
  s = saver.manager->Save(2, wrong, SomeState(2));
  ASSERT_FALSE(s.ok());
  EXPECT_STATUS_MENTIONS(s, "save item 'w'");
  // Nothing of step 2 exists; step 1 is still the latest.
  EXPECT_FALSE(fs::exists(StepDirectory(dir.path(), 2)));
  EXPECT_FALSE(fs::exists(TemporaryDirectory(dir.path(), 2)));
  EXPECT_EQ(testing::ReadFile(dir.path() + "/latest"), "step_1\n");
}

TEST(Checkpoint, AsyncSaveSnapshotsAndReportsErrorsOnTheNextCall) {
  ScratchDirectory dir("async");
  Saver saver(dir.path(), /*async=*/true);
  std::vector<SaveItem> items = SyntheticItems(3);
  ASSERT_TRUE(saver.manager->Save(3, items, SomeState(3)).ok());
  // The snapshot is taken: changing the tensors now does not change the checkpoint.
  for (SaveItem& item : items) std::memset(item.values.raw_data(), 0xAB, item.values.nbytes());
  ASSERT_TRUE(saver.manager->Wait().ok());
  EXPECT_EQ(saver.manager->last_stats().step, 3);
  EXPECT_GT(saver.manager->last_stats().bytes_written, 0u);
  absl::StatusOr<CheckpointReader> reader = CheckpointReader::Open(StepDirectory(dir.path(), 3));
  ASSERT_TRUE(reader.ok());
  for (const SaveItem& item : SyntheticItems(3)) {
    absl::StatusOr<Tensor> t = ReadBox(*reader, item.box);
    ASSERT_TRUE(t.ok());
    EXPECT_TRUE(HoldsBox(*t, item.box, 3));
  }
  // A background write failure (the file size limit makes write() fail with EFBIG) surfaces
  // on the next call, naming the file; the next save is not started.
  std::signal(SIGXFSZ, SIG_IGN);
  rlimit old_limit;
  getrlimit(RLIMIT_FSIZE, &old_limit);
  rlimit small = old_limit;
  small.rlim_cur = 100;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  const absl::Status started = saver.manager->Save(4, SyntheticItems(4), SomeState(4));
  EXPECT_TRUE(started.ok()) << "async: the error comes later";
  const absl::Status next = saver.manager->Save(5, SyntheticItems(5), SomeState(5));
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old_limit), 0);
  ASSERT_FALSE(next.ok());
  EXPECT_STATUS_MENTIONS(next, "checkpoint step 4");
  EXPECT_STATUS_MENTIONS(next, "rank_00000.bin");
  EXPECT_FALSE(saver.manager->save_in_flight());
  EXPECT_FALSE(fs::exists(StepDirectory(dir.path(), 5)));
  EXPECT_EQ(testing::ReadFile(dir.path() + "/latest"), "step_3\n");
  // And the manager works again afterwards.
  ASSERT_TRUE(saver.Save(6, 6).ok());
  EXPECT_EQ(testing::ReadFile(dir.path() + "/latest"), "step_6\n");
}

TEST(Checkpoint, BackgroundSnapshotIsCompleteAfterAwaitSnapshot) {
  ScratchDirectory dir("background");
  parallel::SingleProcessCommunicator world;
  absl::StatusOr<std::unique_ptr<CheckpointManager>> manager = CheckpointManager::Create(
      {.root = dir.path(), .retention = {}, .async = true, .snapshot_in_background = true}, world);
  ASSERT_TRUE(manager.ok());
  std::vector<SaveItem> items = SyntheticItems(8);
  ASSERT_TRUE((*manager)->Save(8, items, SomeState(8)).ok());
  (*manager)->AwaitSnapshot();
  for (SaveItem& item : items) std::memset(item.values.raw_data(), 0xCD, item.values.nbytes());
  ASSERT_TRUE((*manager)->Wait().ok());
  absl::StatusOr<CheckpointReader> reader = CheckpointReader::Open(StepDirectory(dir.path(), 8));
  ASSERT_TRUE(reader.ok());
  for (const SaveItem& item : SyntheticItems(8)) {
    absl::StatusOr<Tensor> t = ReadBox(*reader, item.box);
    ASSERT_TRUE(t.ok());
    EXPECT_TRUE(HoldsBox(*t, item.box, 8));
  }
  // A bad item: in async mode its error reaches every rank through the collective part, so it
  // surfaces on the next call.
  std::vector<SaveItem> bad = SyntheticItems(9);
  bad[0].values = Tensor::Zeros({2}, DType::kF32);
  ASSERT_TRUE((*manager)->Save(9, bad, SomeState(9)).ok());
  const absl::Status s = (*manager)->Wait();
  ASSERT_FALSE(s.ok());
  EXPECT_STATUS_MENTIONS(s, "save item 'w'");
}

TEST(Checkpoint, RetentionKeepsTheLastKAndEveryMth) {
  ScratchDirectory dir("retention");
  Saver saver(dir.path(), true, RetentionPolicy{.keep_last = 2, .keep_every = 4});
  for (int64_t step = 1; step <= 9; ++step) ASSERT_TRUE(saver.Save(step, step).ok());
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path())) names.insert(e.path().filename());
  EXPECT_EQ(names, (std::set<std::string>{"step_4", "step_8", "step_9", "latest"}));
  EXPECT_EQ(testing::ReadFile(dir.path() + "/latest"), "step_9\n");
}

TEST(Checkpoint, SavingAStepAgainReplacesIt) {
  ScratchDirectory dir("replace");
  Saver saver(dir.path());
  ASSERT_TRUE(saver.Save(3, 1).ok());
  ASSERT_TRUE(saver.Save(3, 2).ok());
  absl::StatusOr<CheckpointReader> reader = CheckpointReader::Open(StepDirectory(dir.path(), 3));
  ASSERT_TRUE(reader.ok());
  absl::StatusOr<Tensor> w = ReadBox(*reader, WholeBox("w", {8, 6}));
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(HoldsBox(*w, WholeBox("w", {8, 6}), 2));
  EXPECT_FALSE(fs::exists(StepDirectory(dir.path(), 3) + ".old"));
}

// ---- Bad input ---------------------------------------------------------------------------------

class DamagedCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    Saver saver(dir_.path());
    ASSERT_TRUE(saver.Save(1, 1).ok());
    ASSERT_TRUE(saver.Save(2, 2).ok());
  }
  std::string Step2() const { return StepDirectory(dir_.path(), 2); }
  // After damaging step 2: FindLatestComplete falls back to step 1 with a warning naming why,
  // and loading step 1 gives step 1's values.
  void ExpectFallbackToStep1(const std::string& why) {
    std::vector<std::string> warnings;
    absl::StatusOr<std::string> found = FindLatestComplete(dir_.path(), &warnings);
    ASSERT_TRUE(found.ok()) << found.status();
    EXPECT_EQ(*found, StepDirectory(dir_.path(), 1));
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("skipping " + Step2()), std::string::npos) << warnings[0];
    EXPECT_NE(warnings[0].find(why), std::string::npos) << warnings[0] << "\nwanted: " << why;
    absl::StatusOr<CheckpointReader> reader = CheckpointReader::Open(*found);
    ASSERT_TRUE(reader.ok());
    absl::StatusOr<Tensor> w = ReadBox(*reader, WholeBox("w", {8, 6}));
    ASSERT_TRUE(w.ok());
    EXPECT_TRUE(HoldsBox(*w, WholeBox("w", {8, 6}), 1));
  }
  ScratchDirectory dir_{"damaged"};
};

TEST_F(DamagedCheckpoint, MissingShardFile) {
  fs::remove(Step2() + "/rank_00000.bin");
  absl::StatusOr<CheckpointReader> reader = CheckpointReader::Open(Step2());
  ASSERT_FALSE(reader.ok());
  EXPECT_STATUS_MENTIONS(reader.status(), Step2() + "/rank_00000.bin");
  EXPECT_STATUS_MENTIONS(reader.status(), "missing");
  EXPECT_STATUS_MENTIONS(reader.status(), "'w'");
  ExpectFallbackToStep1("rank_00000.bin");
}

TEST_F(DamagedCheckpoint, WrongChecksumFailsTheReadAndLeavesDestinationsUntouched) {
  // Flip one byte inside the record of "c" (the third record of the file).
  absl::StatusOr<CheckpointReader> before = CheckpointReader::Open(Step2());
  ASSERT_TRUE(before.ok());
  const pb::TensorRecord* c = nullptr;
  for (const pb::TensorRecord& r : before->manifest().tensors()) {
    if (r.name() == "c") c = &r;
  }
  ASSERT_NE(c, nullptr);
  const std::string path = Step2() + "/" + c->file();
  std::string bytes = testing::ReadFile(path);
  bytes[c->byte_offset() + 5] ^= 0x10;
  testing::WriteFile(path, bytes);

  absl::StatusOr<CheckpointReader> reader = CheckpointReader::Open(Step2());
  ASSERT_TRUE(reader.ok()) << "sizes are intact; the damage shows when bytes are read";
  // A read of "w" (clean) and "c" (damaged) together: an error, and "w"'s destination keeps its
  // old contents (staging: never a half-loaded model).
  Tensor w = Tensor::Zeros({8, 6}, DType::kF32);
  Tensor cc = Tensor::Zeros({6, 8}, DType::kF64);
  std::vector<ReadRequest> requests = {{WholeBox("w", {8, 6}), w},
                                       {WholeBox("c", {6, 8}, DType::kF64), cc}};
  const absl::Status s = reader->Read(requests);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_STATUS_MENTIONS(s, path);
  EXPECT_STATUS_MENTIONS(s, "tensor 'c'");
  EXPECT_STATUS_MENTIONS(s, "checksum");
  for (int64_t i = 0; i < w.numel(); ++i) ASSERT_EQ(w.data<float>()[i], 0.0f);
  // Verify names it too.
  const std::vector<std::string> problems = reader->Verify();
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("tensor 'c'"), std::string::npos) << problems[0];
  ExpectFallbackToStep1("checksum");
}

TEST_F(DamagedCheckpoint, TruncatedShardFile) {
  const std::string path = Step2() + "/rank_00000.bin";
  fs::resize_file(path, fs::file_size(path) - 10);
  absl::StatusOr<CheckpointReader> reader = CheckpointReader::Open(Step2());
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_STATUS_MENTIONS(reader.status(), path);
  EXPECT_STATUS_MENTIONS(reader.status(), "truncated");
  ExpectFallbackToStep1("truncated");
}

TEST_F(DamagedCheckpoint, NewerFormatVersion) {
  // Rewrite the manifest as a future writer would, with a matching marker (so only the version
  // is wrong).
  const std::string manifest_path = Step2() + "/manifest.pb";
  pb::Manifest manifest;
  ASSERT_TRUE(manifest.ParseFromString(testing::ReadFile(manifest_path)));
  manifest.set_format_version(kFormatVersion + 1);
  std::string bytes;
  manifest.SerializeToString(&bytes);
  testing::WriteFile(manifest_path, bytes);
  testing::WriteFile(Step2() + "/COMMITTED",
                     CommitMarkerText(2, bytes.size(), Crc32c(bytes.data(), bytes.size())));
  absl::StatusOr<CheckpointReader> reader = CheckpointReader::Open(Step2());
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_STATUS_MENTIONS(reader.status(), manifest_path);
  EXPECT_STATUS_MENTIONS(reader.status(), "format version 2 was written by a newer aoetron");
  ExpectFallbackToStep1("newer aoetron");
}

TEST_F(DamagedCheckpoint, CorruptManifest) {
  const std::string manifest_path = Step2() + "/manifest.pb";
  std::string bytes = testing::ReadFile(manifest_path);
  bytes[bytes.size() / 2] ^= 1;
  testing::WriteFile(manifest_path, bytes);
  absl::StatusOr<CheckpointReader> reader = CheckpointReader::Open(Step2());
  ASSERT_FALSE(reader.ok());
  EXPECT_STATUS_MENTIONS(reader.status(), "corrupt manifest");
  ExpectFallbackToStep1("corrupt manifest");
}

TEST_F(DamagedCheckpoint, MissingMarker) {
  fs::remove(Step2() + "/COMMITTED");
  absl::StatusOr<CheckpointReader> reader = CheckpointReader::Open(Step2());
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_STATUS_MENTIONS(reader.status(), "not committed");
  ExpectFallbackToStep1("not committed");
}

TEST_F(DamagedCheckpoint, EmptyStepDirectory) {
  fs::remove_all(Step2());
  fs::create_directory(Step2());
  ExpectFallbackToStep1("not committed");
}

TEST_F(DamagedCheckpoint, HalfWrittenTemporaryDirectoryIsIgnored) {
  // A crash during the save of step 3: a .tmp directory with a shard and no manifest, and
  // `latest` pointing at step 2 (which is fine): step 2 is found, without warnings.
  fs::create_directory(TemporaryDirectory(dir_.path(), 3));
  testing::WriteFile(TemporaryDirectory(dir_.path(), 3) + "/rank_00000.bin", "partial");
  std::vector<std::string> warnings;
  absl::StatusOr<std::string> found = FindLatestComplete(dir_.path(), &warnings);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found, Step2());
  EXPECT_TRUE(warnings.empty());
  // The next save removes it.
  Saver saver(dir_.path());
  ASSERT_TRUE(saver.Save(4, 4).ok());
  EXPECT_FALSE(fs::exists(TemporaryDirectory(dir_.path(), 3)));
}

TEST_F(DamagedCheckpoint, StalePointerDoesNotHideANewerCompleteCheckpoint) {
  // A crash between the marker and the pointer: latest still says step_1.
  testing::WriteFile(dir_.path() + "/latest", "step_1\n");
  absl::StatusOr<std::string> found = FindLatestComplete(dir_.path());
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found, Step2());
}

TEST(Checkpoint, EmptyOrMissingRootIsNotFound) {
  ScratchDirectory dir("empty");
  absl::StatusOr<std::string> empty = FindLatestComplete(dir.path());
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kNotFound);
  EXPECT_STATUS_MENTIONS(empty.status(), "holds no checkpoint");
  absl::StatusOr<std::string> missing = FindLatestComplete(dir.path() + "/nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_STATUS_MENTIONS(missing.status(), "no such checkpoint directory");
  // Only broken ones.
  fs::create_directory(dir.path() + "/step_3");
  std::vector<std::string> warnings;
  absl::StatusOr<std::string> broken = FindLatestComplete(dir.path(), &warnings);
  ASSERT_FALSE(broken.ok());
  EXPECT_STATUS_MENTIONS(broken.status(), "none of its 1 step directories");
  EXPECT_EQ(warnings.size(), 1u);
}

}  // namespace
}  // namespace aoetron::checkpoint
