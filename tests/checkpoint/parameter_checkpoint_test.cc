// Parameter adapters against real ParameterSet metadata: every rank of a simulated tp2·ep2·dp4
// job (8 ParameterSets built as GptModel would build them) saves with ParameterSaveItems; the
// manifest must prove every tensor written exactly once, writes must be spread over the ranks,
// and a 1-process ParameterSet (another layout) must load exactly its own initial values. ZeRO-1
// flat-range shards round-trip through whole boxes and through other ranges.
#include "launcher/checkpoint/parameter_checkpoint.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>

#include "launcher/checkpoint/checkpoint_commit.h"
#include "launcher/checkpoint/checkpoint_format.h"
#include "launcher/checkpoint/checkpoint_reader.h"
#include "tests/checkpoint/checkpoint_test_util.h"

namespace aoetron::checkpoint {
namespace {

constexpr int kExperts = 4;
constexpr uint64_t kSeed = 99;

// A model-like parameter set for one rank: tp-split, replicated, and expert weights (the experts
// of this rank's ep rank only, as RoutedFeedForward registers them).
std::unique_ptr<ParameterSet> BuildParameters(const parallel::ProcessGrid& grid) {
  auto params = std::make_unique<ParameterSet>(DType::kF32, grid.tp_rank(), grid.tp_size());
  auto add = [&](const std::string& name, Shape shape, Sharding sharding) {
    Parameter p;
    p.name = name;
    p.global_shape = std::move(shape);
    p.sharding = sharding;
    p.init_std = 1.0;
    params->Add(std::move(p));
  };
  add("embedding.weight", {16, 8}, Sharding::TensorSplit(0));
  add("layers.0.attn_norm.weight", {8}, Sharding::Replicated());
  add("layers.0.attn.w_qkv", {8, 24}, Sharding::TensorSplit(1));
  add("layers.0.attn.w_o", {8, 8}, Sharding::TensorSplit(0));
  add("layers.0.ffn.router.weight", {8, kExperts}, Sharding::Replicated());
  const int per_rank = kExperts / grid.ep_size();
  for (int e = grid.ep_rank() * per_rank; e < (grid.ep_rank() + 1) * per_rank; ++e) {
    const std::string prefix = "layers.0.ffn.experts." + std::to_string(e);
    add(prefix + ".w_g", {8, 12}, Sharding::Expert(e, 1));
    add(prefix + ".w_o", {12, 8}, Sharding::Expert(e, 0));
    add(prefix + ".bias", {8}, Sharding::Expert(e));
  }
  params->Allocate();
  params->Initialize(kSeed);
  return params;
}

// Deterministic "AdamW m" content derived from the parameter values (so every layout agrees).
Tensor ShadowOf(const ParameterSet& params, float scale) {
  Tensor flat = Tensor::Empty({params.num_elements()}, DType::kF32);
  const Tensor& values = const_cast<ParameterSet&>(params).flat_values();
  for (int64_t i = 0; i < flat.numel(); ++i)
    flat.data<float>()[i] = values.data<float>()[i] * scale;
  return flat;
}

TEST(ParameterCheckpoint, Tp2Ep2Dp4SavesOnceAndLoadsInOneProcess) {
  testing::ScratchDirectory dir("params");
  const int world = 8, tp = 2, ep = 2;
  const int64_t step = 7;
  ASSERT_TRUE(PrepareTemporaryDirectory(dir.path(), step).ok());
  std::vector<pb::ShardReport> reports;
  std::vector<uint64_t> bytes;
  for (int rank = 0; rank < world; ++rank) {
    absl::StatusOr<parallel::ProcessGrid> grid = parallel::ProcessGrid::Create(world, rank, tp, ep);
    ASSERT_TRUE(grid.ok());
    std::unique_ptr<ParameterSet> params = BuildParameters(*grid);
    const Tensor m = ShadowOf(*params, 0.5f);
    const std::vector<SaveItem> items = ParameterSaveItems(*params, *grid, {{".adam_m", m}});
    ShardSnapshot snapshot;
    ASSERT_TRUE(snapshot.Snapshot(items, rank).ok());
    absl::StatusOr<pb::ShardReport> report =
        snapshot.WriteShard(TemporaryDirectory(dir.path(), step), ShardFileName(rank), 1024);
    ASSERT_TRUE(report.ok()) << report.status();
    reports.push_back(*report);
    bytes.push_back(snapshot.bytes());
  }
  // BuildManifest checks that every tensor is covered exactly once.
  absl::StatusOr<pb::Manifest> manifest = BuildManifest(step, {}, reports, 1024);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  ASSERT_TRUE(CommitCheckpoint(dir.path(), step, *manifest).ok());
  // Fully parallel save: every rank writes, none more than twice the mean.
  uint64_t total = 0;
  for (uint64_t b : bytes) total += b;
  for (int rank = 0; rank < world; ++rank) {
    EXPECT_GT(bytes[rank], 0u) << "rank " << rank;
    EXPECT_LT(bytes[rank], 2 * total / world) << "rank " << rank << " writes too much";
  }

  // One process, tp 1, ep 1: all experts, whole tensors.
  absl::StatusOr<parallel::ProcessGrid> single = parallel::ProcessGrid::Create(1, 0, 1, 1);
  std::unique_ptr<ParameterSet> whole = BuildParameters(*single);
  Tensor expected_values =
      Tensor::Empty({whole->num_elements()}, DType::kF32);  // the layout-independent init
  std::memcpy(expected_values.raw_data(), whole->flat_values().raw_data(),
              expected_values.nbytes());
  const Tensor expected_m = ShadowOf(*whole, 0.5f);
  std::memset(whole->flat_values().raw_data(), 0, whole->flat_values().nbytes());
  Tensor m = Tensor::Zeros({whole->num_elements()}, DType::kF32);
  absl::StatusOr<CheckpointReader> reader = CheckpointReader::Open(StepDirectory(dir.path(), step));
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(reader->tensors().size(), 2u * whole->size());
  ASSERT_TRUE(reader->Read(ParameterReadRequests(*whole, {{".adam_m", m}})).ok());
  EXPECT_EQ(std::memcmp(whole->flat_values().raw_data(), expected_values.raw_data(),
                        expected_values.nbytes()),
            0);
  EXPECT_EQ(std::memcmp(m.raw_data(), expected_m.raw_data(), m.nbytes()), 0);
  EXPECT_TRUE(reader->Verify().empty());
}

TEST(ParameterCheckpoint, ZeroOneFlatShardsRoundTrip) {
  testing::ScratchDirectory dir("zero1");
  absl::StatusOr<parallel::ProcessGrid> grid = parallel::ProcessGrid::Create(1, 0, 1, 1);
  std::unique_ptr<ParameterSet> params = BuildParameters(*grid);
  const Tensor m = ShadowOf(*params, -2.0f);
  const int64_t n = params->num_elements();
  // Three "dp ranks" own uneven flat ranges of m that cut through parameters.
  const std::vector<int64_t> cuts = {0, n / 3 + 5, 2 * n / 3 - 7, n};
  const int64_t step = 1;
  ASSERT_TRUE(PrepareTemporaryDirectory(dir.path(), step).ok());
  std::vector<pb::ShardReport> reports;
  for (int r = 0; r < 3; ++r) {
    Tensor shard = Tensor::Empty({cuts[r + 1] - cuts[r]}, DType::kF32);
    std::memcpy(shard.raw_data(), m.data<float>() + cuts[r], shard.nbytes());
    std::vector<SaveItem> items = FlatShardSaveItems(*params, {".adam_m", shard}, cuts[r]);
    ShardSnapshot snapshot;
    ASSERT_TRUE(snapshot.Snapshot(items, r).ok());
    absl::StatusOr<pb::ShardReport> report =
        snapshot.WriteShard(TemporaryDirectory(dir.path(), step), ShardFileName(r), 64);
    ASSERT_TRUE(report.ok());
    reports.push_back(*report);
  }
  absl::StatusOr<pb::Manifest> manifest = BuildManifest(step, {}, reports, 64);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  ASSERT_TRUE(CommitCheckpoint(dir.path(), step, *manifest).ok());
  absl::StatusOr<CheckpointReader> reader = CheckpointReader::Open(StepDirectory(dir.path(), step));
  ASSERT_TRUE(reader.ok()) << reader.status();

  // Whole boxes (a run without ZeRO-1)...
  Tensor loaded = Tensor::Zeros({n}, DType::kF32);
  std::vector<ReadRequest> requests;
  for (Parameter& p : params->all()) {
    requests.push_back({ParameterBox(p, DType::kF32, ".adam_m"), ShadowView(*params, p, loaded)});
  }
  ASSERT_TRUE(reader->Read(requests).ok());
  EXPECT_EQ(std::memcmp(loaded.raw_data(), m.raw_data(), m.nbytes()), 0);
  // ... and two other flat ranges (ZeRO-1 over 2 ranks).
  for (auto [begin, end] : {std::pair<int64_t, int64_t>{0, n / 2}, {n / 2, n}}) {
    Tensor shard = Tensor::Zeros({end - begin}, DType::kF32);
    ASSERT_TRUE(reader->Read(FlatShardReadRequests(*params, {".adam_m", shard}, begin)).ok());
    EXPECT_EQ(std::memcmp(shard.raw_data(), m.data<float>() + begin, shard.nbytes()), 0);
  }
}

}  // namespace
}  // namespace aoetron::checkpoint
