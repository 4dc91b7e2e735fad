// The tensor-parallel building blocks under mpirun, each against its single-process counterpart
// on fresh random data: vocabulary-parallel embedding and cross-entropy (vs core/ops), and
// GroupedSwiGluExperts split over tp (vs the same layer with tp = 1) — the contract the
// expert-parallel dispatcher relies on: full output and full input gradients on every tp rank,
// accumulated into whatever dx / dgate_in already hold.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/ops/cross_entropy.h"
#include "core/ops/elementwise.h"
#include "core/ops/embedding.h"
#include "models/grouped_swiglu_experts.h"
#include "models/parameter.h"
#include "parallel/process_groups.h"
#include "parallel/tensor_parallel.h"
#include "tests/parallel/mpi_test_environment.h"
#include "tests/tensor_parallel/compare.h"

namespace aoetron {
namespace {

using parallel::Communicator;
using parallel::ProcessGrid;
using parallel::ProcessGroups;
using tp_test::BitwiseEqual;
using tp_test::Box;
using tp_test::FillNormal;
using tp_test::RelativeMaxError;

// Every layout with tp > 1 at this world size (ep = 1; the rest of the world is dp).
std::vector<ProcessGroups> TensorParallelLayouts() {
  parallel::DistributedContext& context = parallel::mpi_test::Context();
  std::vector<ProcessGroups> layouts;
  for (int tp : {2, 4, 8}) {
    absl::StatusOr<ProcessGrid> grid =
        ProcessGrid::Create(context.world_size(), context.world_rank(), tp, /*ep=*/1);
    if (!grid.ok()) continue;
    absl::StatusOr<ProcessGroups> groups = parallel::CreateProcessGroups(*grid, context.world());
    AOETRON_CHECK(groups.ok()) << groups.status();
    layouts.push_back(std::move(*groups));
  }
  return layouts;
}

// The same stream on every rank of a tp group (and a different one per dp replica and test).
std::mt19937_64 GroupRng(const ProcessGroups& groups, const std::string& test) {
  std::seed_seq seq{parallel::mpi_test::TestSeed(),
                    static_cast<uint64_t>(std::hash<std::string>{}(test)),
                    static_cast<uint64_t>(groups.grid().tp_size()),
                    static_cast<uint64_t>(groups.grid().dp_rank())};
  return std::mt19937_64(seq);
}

Tensor RandomIds(std::mt19937_64& rng, int64_t n, int64_t vocab, bool with_ignored) {
  Tensor ids = Tensor::Empty({n}, DType::kI32);
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(vocab) - 1);
  for (int64_t t = 0; t < n; ++t) ids.data<int32_t>()[t] = id(rng);
  if (with_ignored) ids.data<int32_t>()[n / 2] = -1;  // one ignored target
  return ids;
}

Tensor CopyOf(const Tensor& t) {
  Tensor c = Tensor::Empty(t.shape(), t.dtype());
  ops::Copy(t, c);
  return c;
}

// Every tp rank's `local` value, gathered, must be bitwise one value.
void ExpectSameOnEveryTensorParallelRank(Communicator& tp, const Tensor& local,
                                         const std::string& what) {
  Tensor all = Tensor::Empty({static_cast<int64_t>(tp.size()) * local.numel()}, local.dtype());
  tp.AllGather(local, all);
  for (int r = 0; r < tp.size(); ++r) {
    EXPECT_TRUE(BitwiseEqual(all.Rows(r * local.numel(), (r + 1) * local.numel()),
                             local.Reshape({local.numel()})))
        << what << " differs between tp rank " << r << " and tp rank " << tp.rank();
  }
}

class VocabParallelTest : public ::testing::TestWithParam<DType> {};

TEST_P(VocabParallelTest, CrossEntropyMatchesTheFullRow) {
  const DType dtype = GetParam();
  const double tolerance = dtype == DType::kF64 ? 1e-13 : 2e-6;
  for (ProcessGroups& groups : TensorParallelLayouts()) {
    Communicator& tp = groups.tensor_parallel();
    SCOPED_TRACE(groups.grid().DebugString());
    // 4100 / tp > 1024 for tp ≤ 4: the shard spans more than one summation block.
    for (auto [n, vocab] : {std::pair<int64_t, int64_t>{13, 40}, {5, 4100}}) {
      SCOPED_TRACE("N " + std::to_string(n) + ", V " + std::to_string(vocab));
      std::mt19937_64 rng = GroupRng(groups, "ce" + std::to_string(vocab));
      Tensor logits = Tensor::Empty({n, vocab}, dtype);
      FillNormal(logits, rng, 3.0);
      const Tensor targets = RandomIds(rng, n, vocab, /*with_ignored=*/true);
      const double grad_scale = std::uniform_real_distribution<double>(0.1, 2.0)(rng);
      const int64_t local = vocab / tp.size(), begin = tp.rank() * local;

      Tensor expected_loss = Tensor::Empty({n}, dtype);
      ops::CrossEntropyForward(logits, targets, expected_loss);
      Tensor expected_grad = CopyOf(logits);
      Tensor expected_loss_bwd = Tensor::Empty({n}, dtype);
      ops::CrossEntropyForwardBackward(expected_grad, targets, grad_scale, expected_loss_bwd);

      ActivationArena arena;
      Tensor shard = Box(logits, {0, begin}, {n, local});
      const Tensor shard_before = CopyOf(shard);
      Tensor loss = Tensor::Empty({n}, dtype);
      parallel::VocabParallelCrossEntropyForward(tp, shard, targets, begin, vocab, loss, arena);
      EXPECT_TRUE(BitwiseEqual(shard, shard_before)) << "forward must not write the logits";
      EXPECT_LE(RelativeMaxError(loss, expected_loss), tolerance);
      ExpectSameOnEveryTensorParallelRank(tp, loss, "forward loss");

      Tensor loss_bwd = Tensor::Empty({n}, dtype);
      parallel::VocabParallelCrossEntropyForwardBackward(tp, shard, targets, begin, vocab,
                                                         grad_scale, loss_bwd, arena);
      EXPECT_LE(RelativeMaxError(loss_bwd, expected_loss_bwd), tolerance);
      EXPECT_TRUE(BitwiseEqual(loss_bwd, loss));
      ExpectSameOnEveryTensorParallelRank(tp, loss_bwd, "loss");
      EXPECT_LE(RelativeMaxError(shard, Box(expected_grad, {0, begin}, {n, local})), tolerance)
          << "dlogits";
      EXPECT_EQ(tp_test::At(loss_bwd, n / 2), 0.0) << "ignored target";
    }
  }
}

TEST_P(VocabParallelTest, EmbeddingMatchesTheFullTable) {
  const DType dtype = GetParam();
  for (ProcessGroups& groups : TensorParallelLayouts()) {
    Communicator& tp = groups.tensor_parallel();
    SCOPED_TRACE(groups.grid().DebugString());
    const int64_t n = 37, vocab = 24, d = 10;
    std::mt19937_64 rng = GroupRng(groups, "embedding");
    Tensor table = Tensor::Empty({vocab, d}, dtype);
    FillNormal(table, rng);
    const Tensor ids = RandomIds(rng, n, vocab, /*with_ignored=*/false);
    Tensor dout = Tensor::Empty({n, d}, dtype);
    FillNormal(dout, rng);
    Tensor dtable = Tensor::Empty({vocab, d}, dtype);
    FillNormal(dtable, rng);  // backward accumulates onto what is there
    const int64_t local = vocab / tp.size(), begin = tp.rank() * local;

    Tensor expected = Tensor::Empty({n, d}, dtype);
    ops::EmbeddingForward(ids, table, expected);
    Tensor out = Tensor::Empty({n, d}, dtype);
    parallel::VocabParallelEmbeddingForward(tp, ids, Box(table, {begin, 0}, {local, d}), begin,
                                            vocab, out);
    EXPECT_TRUE(BitwiseEqual(out, expected)) << "one rank contributes each row: exact";

    Tensor dtable_shard = Box(dtable, {begin, 0}, {local, d});
    ops::EmbeddingBackward(ids, dout, dtable);
    parallel::VocabParallelEmbeddingBackward(ids, dout, begin, vocab, dtable_shard);
    EXPECT_TRUE(BitwiseEqual(dtable_shard, Box(dtable, {begin, 0}, {local, d})))
        << "same additions in the same order";
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, VocabParallelTest, ::testing::Values(DType::kF64, DType::kF32),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

// GroupedSwiGluExperts with its width split over tp against the same experts in one process.
struct ExpertsCase {
  std::string name;
  bool gate_is_x;  // dense / router MoE (G = X) or AoE (a separate gate input of width r)
  DType dtype;
};

class GroupedExpertsTensorParallelTest : public ::testing::TestWithParam<ExpertsCase> {};

TEST_P(GroupedExpertsTensorParallelTest, FullOutputAndGradientsOnEveryRank) {
  const ExpertsCase& c = GetParam();
  const double tolerance = c.dtype == DType::kF64 ? 1e-12 : 1e-5;
  const int64_t d = 12, gate_width = c.gate_is_x ? d : 6, width = 20;
  const std::vector<int64_t> offsets = {0, 7, 7, 19, 23};  // expert 1 gets no rows
  const int64_t rows = offsets.back();
  for (ProcessGroups& groups : TensorParallelLayouts()) {
    Communicator& tp = groups.tensor_parallel();
    SCOPED_TRACE(groups.grid().DebugString());
    std::mt19937_64 rng = GroupRng(groups, "experts" + c.name);
    const uint64_t init_seed = rng();
    std::vector<std::string> prefixes;
    std::vector<Sharding> shardings;
    for (int e = 0; e < 4; ++e) {
      prefixes.push_back("experts." + std::to_string(e + 3));
      shardings.push_back(Sharding::Expert(e + 3));  // as a caller owning experts 3..6 would
    }
    const std::string gate_name = c.gate_is_x ? "w_g" : "w_up";
    ParameterSet full_params(c.dtype, 0, 1);
    GroupedSwiGluExperts full(&full_params, parallel::SingleProcessGroups().tensor_parallel(),
                              prefixes, gate_name, d, gate_width, width, 0.3, 0.2, shardings);
    full_params.Allocate();
    full_params.Initialize(init_seed);
    ParameterSet split_params(c.dtype, tp.rank(), tp.size());
    GroupedSwiGluExperts split(&split_params, tp, prefixes, gate_name, d, gate_width, width, 0.3,
                               0.2, shardings);
    split_params.Allocate();
    split_params.Initialize(init_seed);
    EXPECT_EQ(split.local_width(), width / tp.size());

    Tensor x = Tensor::Empty({rows, d}, c.dtype);
    FillNormal(x, rng);
    Tensor gate = x;
    if (!c.gate_is_x) {
      gate = Tensor::Empty({rows, gate_width}, c.dtype);
      FillNormal(gate, rng);
    }
    Tensor dy = Tensor::Empty({rows, d}, c.dtype);
    FillNormal(dy, rng);
    // Backward accumulates: start dx and dgate from non-zero values.
    Tensor dx0 = Tensor::Empty({rows, d}, c.dtype);
    FillNormal(dx0, rng);
    Tensor dgate0 = Tensor::Empty({rows, gate_width}, c.dtype);
    FillNormal(dgate0, rng);

    auto run = [&](GroupedSwiGluExperts& layer, Tensor& y, Tensor& dx, Tensor& dgate) {
      ActivationArena arena;
      y = Tensor::Empty({rows, d}, c.dtype);
      layer.Forward(x, gate, offsets, y, arena);
      dx = CopyOf(dx0);
      dgate = c.gate_is_x ? dx : CopyOf(dgate0);
      layer.Backward(dy, dx, dgate, arena);
    };
    Tensor y_full, dx_full, dgate_full, y_split, dx_split, dgate_split;
    run(full, y_full, dx_full, dgate_full);
    run(split, y_split, dx_split, dgate_split);

    EXPECT_LE(RelativeMaxError(y_split, y_full), tolerance) << "y";
    EXPECT_LE(RelativeMaxError(dx_split, dx_full), tolerance) << "dx";
    if (!c.gate_is_x) {
      EXPECT_LE(RelativeMaxError(dgate_split, dgate_full), tolerance) << "dgate_in";
    }
    ExpectSameOnEveryTensorParallelRank(tp, y_split, "y");
    ExpectSameOnEveryTensorParallelRank(tp, dx_split, "dx");
    for (const Parameter& p : split_params.all()) {
      SCOPED_TRACE(p.name);
      const Parameter* reference = full_params.Find(p.name);
      ASSERT_NE(reference, nullptr);
      EXPECT_GE(p.sharding.expert, 3) << "the caller's expert index is kept";
      const bool row_parallel = p.name.ends_with(".w_o");
      EXPECT_EQ(p.sharding.tensor_parallel_dim, row_parallel ? 0 : 1);
      EXPECT_TRUE(BitwiseEqual(p.value, Box(reference->value, p.local_offset, p.local_shape)));
      const Tensor expected = Box(reference->grad, p.local_offset, p.local_shape);
      EXPECT_LE(RelativeMaxError(p.grad, expected), tolerance);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, GroupedExpertsTensorParallelTest,
                         ::testing::Values(ExpertsCase{"gate_is_x_f64", true, DType::kF64},
                                           ExpertsCase{"separate_gate_f64", false, DType::kF64},
                                           ExpertsCase{"gate_is_x_f32", true, DType::kF32},
                                           ExpertsCase{"separate_gate_f32", false, DType::kF32}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace aoetron
