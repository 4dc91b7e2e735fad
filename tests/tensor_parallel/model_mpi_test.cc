// GptModel under tensor parallelism against the single-process model, under mpirun.
//
// For dense, router-MoE and AoE (paper and release gates) tiny models, in f64 and f32, with the
// whole world one tp group (tp = world size, ep = dp = 1: with dp > 1 the aux loss's statistics
// are global over dp, so one replica alone is not the single-process model of its batch; layouts
// that mix tp with dp and ep are the trainer's end-to-end tests): every rank also builds the whole
// model in-process (SingleProcessGroups) from the same seed and runs the same batch. Then
//   - every parameter value this rank holds is bitwise the matching box of the whole model's;
//   - loss, aux loss and per-layer routing equal the single-process ones, and the loss is bitwise
//     the same on every tp rank;
//   - every parameter's gradient (two accumulated micro-batches, loss_scale ≠ 1, some ignored
//     targets) equals the matching box of the single-process gradient;
//   - Forward() (evaluation) gives the same loss as ForwardBackward.
// Tolerances: max |error| over a tensor relative to its max |value|: f64 1e-12 (measured ≤ 5e-15:
// only the summation order differs), f32 2e-5 (measured ~1e-6 on these shapes).
// Data and parameter seeds are fresh each run (printed; AOETRON_TEST_SEED replays).
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "core/arena.h"
#include "models/gpt_model.h"
#include "parallel/process_groups.h"
#include "tests/parallel/mpi_test_environment.h"
#include "tests/tensor_parallel/compare.h"

namespace aoetron {
namespace {

using parallel::ProcessGrid;
using parallel::ProcessGroups;
using tp_test::BitwiseEqual;
using tp_test::Box;
using tp_test::RelativeMaxError;

struct ModelCase {
  std::string name;
  FfnKind ffn;
  AoeGateVariant gate;
  DType dtype;
};

ModelConfig TinyConfig(const ModelCase& c) {
  ModelConfig config;
  config.vocab_size = 64;
  config.d_model = 32;
  config.n_layers = 2;
  config.n_heads = 4;
  config.seq_len = 8;
  config.d_ffn = 48;  // AoE: d_wide = round((3·32·48 − 8·32) / (8 + 64)) = 60
  config.ffn = c.ffn;
  config.n_experts = 4;
  config.top_k = 2;
  config.d_low = 8;
  config.aoe_gate = c.gate;
  config.aux_loss_coeff = 0.01;
  // As in tests/parity: a wide init spreads router logits and AoE norms, so gate weights are far
  // from uniform and top-K margins are wide (f32 rounding cannot flip a selection).
  config.init_std = 0.2;
  return config;
}

// Tokens and targets of one micro-batch, the same on every rank of a tp group.
void RandomBatch(std::mt19937_64& rng, int64_t batch, int64_t seq, int64_t vocab, Tensor& tokens,
                 Tensor& targets) {
  tokens = Tensor::Empty({batch, seq}, DType::kI32);
  targets = Tensor::Empty({batch, seq}, DType::kI32);
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(vocab) - 1);
  for (int64_t i = 0; i < batch * seq; ++i) {
    tokens.data<int32_t>()[i] = id(rng);
    targets.data<int32_t>()[i] = id(rng);
  }
  targets.data<int32_t>()[seq - 1] = -1;  // an ignored position
}

double Relative(double actual, double expected) {
  const double scale = std::abs(expected);
  return scale > 0 ? std::abs(actual - expected) / scale : std::abs(actual - expected);
}

class TensorParallelModelTest : public ::testing::TestWithParam<ModelCase> {};

TEST_P(TensorParallelModelTest, MatchesTheSingleProcessModel) {
  const ModelCase& c = GetParam();
  const ModelConfig config = TinyConfig(c);
  const double tolerance = c.dtype == DType::kF64 ? 1e-12 : 2e-5;
  parallel::DistributedContext& context = parallel::mpi_test::Context();
  const int tp = context.world_size();
  ASSERT_GE(tp, 2) << "run under mpirun -np 2 or more";
  {
    absl::StatusOr<ProcessGrid> grid =
        ProcessGrid::Create(context.world_size(), context.world_rank(), tp, /*ep=*/1);
    ASSERT_TRUE(grid.ok()) << grid.status();
    SCOPED_TRACE(grid->DebugString());
    absl::StatusOr<ProcessGroups> groups = parallel::CreateProcessGroups(*grid, context.world());
    ASSERT_TRUE(groups.ok()) << groups.status();
    parallel::Communicator& tp_group = groups->tensor_parallel();

    std::seed_seq seq{parallel::mpi_test::TestSeed(),
                      static_cast<uint64_t>(std::hash<std::string>{}(c.name)),
                      static_cast<uint64_t>(tp), static_cast<uint64_t>(grid->dp_rank())};
    std::mt19937_64 rng(seq);
    const uint64_t init_seed = rng();

    GptModel whole(config, Device::Cpu(), c.dtype);
    whole.parameters().Initialize(init_seed);
    GptModel split(config, *groups, Device::Cpu(), c.dtype);
    split.parameters().Initialize(init_seed);

    const double loss_scale = 0.75;
    double worst_loss_error = 0.0;
    ActivationArena whole_arena, split_arena;
    for (int micro_batch = 0; micro_batch < 2; ++micro_batch) {
      SCOPED_TRACE("micro-batch " + std::to_string(micro_batch));
      Tensor tokens, targets;
      RandomBatch(rng, /*batch=*/2, config.seq_len, config.vocab_size, tokens, targets);
      const StepOutputs expected = whole.ForwardBackward(tokens, targets, loss_scale, whole_arena);
      const StepOutputs actual = split.ForwardBackward(tokens, targets, loss_scale, split_arena);
      worst_loss_error = std::max(worst_loss_error, Relative(actual.loss, expected.loss));
      EXPECT_LE(Relative(actual.loss, expected.loss), tolerance)
          << actual.loss << " vs " << expected.loss;
      EXPECT_LE(Relative(actual.aux_loss, expected.aux_loss), tolerance)
          << actual.aux_loss << " vs " << expected.aux_loss;
      ASSERT_EQ(actual.layer_stats.size(), expected.layer_stats.size());
      for (size_t l = 0; l < actual.layer_stats.size(); ++l) {
        EXPECT_EQ(actual.layer_stats[l].tokens_per_expert,
                  expected.layer_stats[l].tokens_per_expert)
            << "layer " << l;
      }
      // The loss is bitwise one value over the tp group.
      double losses[2] = {actual.loss, actual.aux_loss};
      std::vector<double> gathered(2 * tp);
      tp_group.AllGather(Tensor::Wrap(losses, {2}, DType::kF64),
                         Tensor::Wrap(gathered.data(), {2 * tp}, DType::kF64));
      for (int r = 0; r < tp; ++r) {
        EXPECT_EQ(gathered[2 * r], actual.loss) << "tp rank " << r;
        EXPECT_EQ(gathered[2 * r + 1], actual.aux_loss) << "tp rank " << r;
      }
      const StepOutputs evaluated = split.Forward(tokens, targets, split_arena);
      EXPECT_EQ(evaluated.loss, actual.loss);
      EXPECT_EQ(evaluated.aux_loss, actual.aux_loss);
    }

    int split_parameters = 0;
    double worst_error = 0.0;
    std::string worst_name;
    for (const Parameter& p : split.parameters().all()) {
      SCOPED_TRACE(p.name);
      const Parameter* reference = whole.parameters().Find(p.name);
      ASSERT_NE(reference, nullptr);
      EXPECT_EQ(p.global_shape, reference->global_shape);
      split_parameters += p.sharding.is_tensor_split();
      EXPECT_TRUE(BitwiseEqual(p.value, Box(reference->value, p.local_offset, p.local_shape)));
      const Tensor expected = Box(reference->grad, p.local_offset, p.local_shape);
      const double error = RelativeMaxError(p.grad, expected);
      EXPECT_LE(error, tolerance);
      if (error >= worst_error) {
        worst_error = error;
        worst_name = p.name;
      }
    }
    if (context.world_rank() == 0) {
      std::cout << "  tp " << tp << ": largest gradient error " << worst_error << " (" << worst_name
                << "), loss error " << worst_loss_error << "\n";
    }
    EXPECT_EQ(split.parameters().size(), whole.parameters().size());
    EXPECT_GT(split_parameters, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Models, TensorParallelModelTest,
    ::testing::Values(
        ModelCase{"dense_f64", FfnKind::kDense, AoeGateVariant::kPaper, DType::kF64},
        ModelCase{"moe_f64", FfnKind::kRouterMoe, AoeGateVariant::kPaper, DType::kF64},
        ModelCase{"aoe_f64", FfnKind::kAoe, AoeGateVariant::kPaper, DType::kF64},
        ModelCase{"aoe_release_f64", FfnKind::kAoe, AoeGateVariant::kRelease, DType::kF64},
        ModelCase{"dense_f32", FfnKind::kDense, AoeGateVariant::kPaper, DType::kF32},
        ModelCase{"moe_f32", FfnKind::kRouterMoe, AoeGateVariant::kPaper, DType::kF32},
        ModelCase{"aoe_f32", FfnKind::kAoe, AoeGateVariant::kPaper, DType::kF32},
        ModelCase{"aoe_release_f32", FfnKind::kAoe, AoeGateVariant::kRelease, DType::kF32}),
    [](const auto& info) { return info.param.name; });

// Tensor parallelism combined with data and expert parallelism (world 4: tp 2 × dp 2 with ep 1
// and with ep 2), f64, the expert-parallel tests' method (tests/expert_parallel): the global
// micro-batch is [dp·B, T], dp rank r runs rows [r·B, (r+1)·B) with loss_scale 1/dp, every rank
// also runs the whole batch in one process. The dp-averaged loss and the aux loss equal the
// reference; replicated and tp-split gradients summed over dp, and expert gradients summed over
// the expert-data-parallel group, equal this rank's box of the reference gradient.
class TensorParallelCombinedLayoutTest : public ::testing::TestWithParam<ModelCase> {};

TEST_P(TensorParallelCombinedLayoutTest, MatchesTheSingleProcessModel) {
  ModelCase c = GetParam();
  c.dtype = DType::kF64;
  const ModelConfig config = TinyConfig(c);
  parallel::DistributedContext& context = parallel::mpi_test::Context();
  if (context.world_size() < 4) GTEST_SKIP() << "needs 4 ranks (tp 2 × dp 2)";
  const int tp = 2;
  for (int ep : {1, 2}) {
    if (!config.is_moe() && ep > 1) continue;
    absl::StatusOr<ProcessGrid> grid =
        ProcessGrid::Create(context.world_size(), context.world_rank(), tp, ep);
    if (!grid.ok()) continue;
    SCOPED_TRACE(grid->DebugString());
    absl::StatusOr<ProcessGroups> groups = parallel::CreateProcessGroups(*grid, context.world());
    ASSERT_TRUE(groups.ok()) << groups.status();
    const int dp = grid->dp_size();
    const int64_t batch = 2, seq = config.seq_len;

    std::seed_seq seed_seq{parallel::mpi_test::TestSeed(),
                           static_cast<uint64_t>(std::hash<std::string>{}(c.name)),
                           static_cast<uint64_t>(ep)};
    std::mt19937_64 rng(seed_seq);
    const uint64_t init_seed = rng();
    Tensor tokens, targets;  // the global micro-batch, the same on every rank
    RandomBatch(rng, dp * batch, seq, config.vocab_size, tokens, targets);
    // One ignored target in every replica's rows, so each replica's mean is over as many tokens
    // and their average is the global mean.
    for (int r = 0; r < dp; ++r) targets.data<int32_t>()[(r * batch + 1) * seq - 1] = -1;

    GptModel whole(config, Device::Cpu(), c.dtype);
    whole.parameters().Initialize(init_seed);
    ActivationArena whole_arena;
    const StepOutputs expected = whole.ForwardBackward(tokens, targets, 1.0, whole_arena);

    GptModel split(config, *groups, Device::Cpu(), c.dtype);
    split.parameters().Initialize(init_seed);
    ActivationArena split_arena;
    const int64_t first = grid->dp_rank() * batch;
    const StepOutputs actual = split.ForwardBackward(
        tokens.Reshape({dp * batch, seq}).Rows(first, first + batch),
        targets.Reshape({dp * batch, seq}).Rows(first, first + batch), 1.0 / dp, split_arena);
    double loss = actual.loss;
    groups->data_parallel().AllReduce(Tensor::Wrap(&loss, {1}, DType::kF64),
                                      parallel::ReduceOp::kSum);
    EXPECT_LE(Relative(loss / dp, expected.loss), 1e-12);
    EXPECT_LE(Relative(actual.aux_loss, expected.aux_loss), 1e-12);
    ASSERT_EQ(actual.layer_stats.size(), expected.layer_stats.size());
    for (size_t l = 0; l < actual.layer_stats.size(); ++l) {
      EXPECT_EQ(actual.layer_stats[l].tokens_per_expert, expected.layer_stats[l].tokens_per_expert)
          << "layer " << l;
    }
    for (const Parameter& p : split.parameters().all()) {
      SCOPED_TRACE(p.name);
      const Parameter* reference = whole.parameters().Find(p.name);
      ASSERT_NE(reference, nullptr);
      EXPECT_TRUE(BitwiseEqual(p.value, Box(reference->value, p.local_offset, p.local_shape)));
      Tensor summed = Tensor::Empty(p.grad.shape(), p.grad.dtype());
      std::copy_n(p.grad.data<double>(), p.grad.numel(), summed.data<double>());
      if (p.sharding.is_expert()) {
        groups->expert_data_parallel().AllReduce(summed, parallel::ReduceOp::kSum);
      } else {
        groups->data_parallel().AllReduce(summed, parallel::ReduceOp::kSum);
      }
      EXPECT_LE(RelativeMaxError(summed, Box(reference->grad, p.local_offset, p.local_shape)),
                1e-12);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Models, TensorParallelCombinedLayoutTest,
    ::testing::Values(ModelCase{"dense", FfnKind::kDense, AoeGateVariant::kPaper, DType::kF64},
                      ModelCase{"moe", FfnKind::kRouterMoe, AoeGateVariant::kPaper, DType::kF64},
                      ModelCase{"aoe", FfnKind::kAoe, AoeGateVariant::kPaper, DType::kF64},
                      ModelCase{"aoe_release", FfnKind::kAoe, AoeGateVariant::kRelease,
                                DType::kF64}),
    [](const auto& info) { return info.param.name; });

// Layouts the model cannot be cut into are errors naming the fields (checked before any work).
TEST(ParallelLayoutValidationTest, NamesTheFields) {
  ModelConfig config;  // d 256, 4 heads, vocab 8192, d_ffn 1024, AoE, 8 experts, r 64
  auto message = [&](const ModelConfig& c, int tp, int ep) {
    return std::string(ValidateParallelLayout(c, tp, ep).message());
  };
  // The parameter-matched width (3·256·1024 − 64·256) / (64 + 512) = 1336.9 is derived as 1344,
  // a multiple of 64 that every tp up to 8 splits; an explicit odd width is an error.
  EXPECT_TRUE(ValidateParallelLayout(config, 2, 1).ok());
  config.d_wide = 1337;
  EXPECT_EQ(message(config, 2, 1),
            "the AoE expert width d_wide (1337, model.d_wide) must be divisible by "
            "parallel.tp (2): set model.d_wide: 1336 (the nearest multiple of 2)");
  EXPECT_TRUE(ValidateParallelLayout(config, 1, 8).ok());
  config.d_wide = 1336;
  EXPECT_TRUE(ValidateParallelLayout(config, 4, 8).ok());
  EXPECT_EQ(message(config, 8, 1),
            "model.n_heads (4) must be divisible by parallel.tp (8): tensor parallelism splits "
            "heads");
  ModelConfig odd_vocab = config;
  odd_vocab.vocab_size = 50257;
  EXPECT_NE(message(odd_vocab, 2, 1)
                .find("model.vocab_size (50257) must be divisible by "
                      "parallel.tp (2)"),
            std::string::npos);
  // The suggestion is the next multiple of 128·tp, and it passes.
  EXPECT_NE(message(odd_vocab, 2, 1).find("model.vocab_size: 50432"), std::string::npos);
  odd_vocab.vocab_size = 50432;
  EXPECT_TRUE(ValidateParallelLayout(odd_vocab, 2, 1).ok());
  ModelConfig aoe = config;
  aoe.d_wide = 30;
  EXPECT_NE(message(aoe, 4, 1).find("d_wide (30, model.d_wide) must be divisible by parallel.tp"),
            std::string::npos);
  ModelConfig dense = config;
  dense.ffn = FfnKind::kDense;
  dense.d_ffn = 1026;
  EXPECT_NE(message(dense, 4, 1).find("model.d_ffn (1026) must be divisible by parallel.tp (4)"),
            std::string::npos);
  EXPECT_NE(message(config, 1, 3).find("model.n_experts (8) must be divisible by parallel.ep (3)"),
            std::string::npos);
  EXPECT_TRUE(ValidateParallelLayout(dense, 1, 3).ok()) << "a dense model has no experts to shard";
}

}  // namespace
}  // namespace aoetron
