// GptModel under expert (and data, and tensor) parallelism against the single-process model, f64.
//
// The global micro-batch is [dp·B, T]; data-parallel rank r runs rows [r·B, (r+1)·B) with the
// trainer's loss_scale 1/dp, while every rank also runs the whole batch in one process
// (loss_scale 1). Then, within f64 round-off:
//   - the loss averaged over dp and the aux loss (the same on every rank) equal the reference;
//   - the routing statistics (global token counts per expert) equal the reference exactly;
//   - replicated parameters' gradients summed over dp equal the reference's (this is where the
//     aux loss's ×dp gradient scale of routed_ffn.cc is proven: without it the router's /
//     Ŵ_down's gradients are off);
//   - each expert is held only by its ep rank, and its gradient summed over the expert-data-
//     parallel group equals the reference's for that expert (with tp, each rank's box of it);
//   - each layer's dispatched payload equals the analytic minimum;
//   - the same run twice gives bitwise the same gradients.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "models/gpt_model.h"
#include "parallel/process_groups.h"
#include "tests/parallel/mpi_test_environment.h"

namespace aoetron::expert_parallel_test {
namespace {

using parallel::ProcessGroups;

parallel::Communicator& World() { return parallel::mpi_test::Context().world(); }

ModelConfig TinyConfig(FfnKind ffn) {
  ModelConfig c;
  c.vocab_size = 64;
  c.d_model = 16;
  c.n_layers = 2;
  c.n_heads = 2;
  c.seq_len = 8;
  c.d_ffn = 24;
  c.ffn = ffn;
  c.n_experts = 8;
  c.top_k = 2;
  c.d_low = 4;
  c.d_wide = 20;
  c.aux_loss_coeff = 0.1;  // large enough that its gradient is a visible share
  c.init_std = 0.2;        // spread scores: no near-ties in top-K between layouts
  return c;
}

struct Case {
  std::string name;
  ModelConfig config;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::vector<Case> Cases() {
  ModelConfig moe = TinyConfig(FfnKind::kRouterMoe);
  ModelConfig aoe = TinyConfig(FfnKind::kAoe);
  ModelConfig release = aoe;
  release.aoe_gate = AoeGateVariant::kRelease;
  ModelConfig aoe_capacity = aoe;
  aoe_capacity.capacity_factor = 0.75;
  ModelConfig moe_capacity = moe;
  moe_capacity.capacity_factor = 0.75;
  return {{"moe", moe},
          {"aoe_paper", aoe},
          {"aoe_release", release},
          {"aoe_capacity", aoe_capacity},
          {"moe_capacity", moe_capacity}};
}

// max |a − b| ≤ tol · max(max |b|, 1e-3) over the tensor.
void ExpectClose(const double* got, const double* want, int64_t n, double tol,
                 const std::string& what) {
  double scale = 1e-3, worst = 0.0;
  int64_t at = 0;
  for (int64_t i = 0; i < n; ++i) scale = std::max(scale, std::abs(want[i]));
  for (int64_t i = 0; i < n; ++i) {
    const double diff = std::abs(got[i] - want[i]);
    if (diff > worst) {
      worst = diff;
      at = i;
    }
  }
  EXPECT_LE(worst, tol * scale) << what << ": element " << at << " is " << got[at] << ", reference "
                                << want[at] << " (scale " << scale << ")";
}

// The box of a global row-major tensor that a rank holds: global[local_offset + i].
std::vector<double> Box(const Parameter& global, const Parameter& local) {
  const Shape& shape = local.local_shape;
  const int rank = static_cast<int>(shape.size());
  std::vector<double> box(NumElements(shape));
  const double* all = global.grad.data<double>();
  for (int64_t i = 0; i < static_cast<int64_t>(box.size()); ++i) {
    int64_t rest = i, index = 0, stride = 1;
    for (int k = rank - 1; k >= 0; --k) {
      index += (rest % shape[k] + local.local_offset[k]) * stride;
      rest /= shape[k];
      stride *= global.global_shape[k];
    }
    box[i] = all[index];
  }
  return box;
}

void CheckLayout(const Case& test_case, int tp, int ep) {
  SCOPED_TRACE(testing::Message() << test_case.name << ", tp " << tp << ", ep " << ep
                                  << " of world " << World().size());
  absl::StatusOr<parallel::ProcessGrid> grid =
      parallel::ProcessGrid::Create(World().size(), World().rank(), tp, ep);
  ASSERT_TRUE(grid.ok()) << grid.status();
  absl::StatusOr<ProcessGroups> groups = parallel::CreateProcessGroups(*grid, World());
  ASSERT_TRUE(groups.ok()) << groups.status();
  const ModelConfig& config = test_case.config;
  const int dp = grid->dp_size(), dp_rank = grid->dp_rank();
  const int64_t batch = 2, seq = config.seq_len;
  const uint64_t seed = parallel::mpi_test::TestSeed();

  // The global micro-batch, the same on every rank.
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(config.vocab_size - 1));
  std::vector<int32_t> tokens(dp * batch * seq), targets(dp * batch * seq);
  for (int32_t& t : tokens) t = token(rng);
  for (int32_t& t : targets) t = token(rng);

  GptModel reference(config, Device::Cpu(), DType::kF64);
  reference.parameters().Initialize(seed);
  ActivationArena reference_arena;
  const StepOutputs want = reference.ForwardBackward(
      Tensor::Wrap(tokens.data(), {dp * batch, seq}, DType::kI32),
      Tensor::Wrap(targets.data(), {dp * batch, seq}, DType::kI32), 1.0, reference_arena);

  GptModel model(config, *groups, Device::Cpu(), DType::kF64);
  ParameterSet& params = model.parameters();
  params.Initialize(seed);
  ActivationArena arena;
  const int64_t first = dp_rank * batch * seq;
  Tensor my_tokens = Tensor::Wrap(tokens.data() + first, {batch, seq}, DType::kI32);
  Tensor my_targets = Tensor::Wrap(targets.data() + first, {batch, seq}, DType::kI32);
  const StepOutputs got = model.ForwardBackward(my_tokens, my_targets, 1.0 / dp, arena);

  // Determinism: the same step again gives the same bits.
  const std::vector<double> first_grads(params.flat_grads().data<double>(),
                                        params.flat_grads().data<double>() + params.num_elements());
  params.ZeroGrads();
  model.ForwardBackward(my_tokens, my_targets, 1.0 / dp, arena);
  for (int64_t i = 0; i < params.num_elements(); ++i) {
    ASSERT_EQ(params.flat_grads().data<double>()[i], first_grads[i]) << "rerun, element " << i;
  }

  // Losses.
  double loss = got.loss;
  groups->data_parallel().AllReduce(Tensor::Wrap(&loss, {1}, DType::kF64),
                                    parallel::ReduceOp::kSum);
  EXPECT_NEAR(loss / dp, want.loss, 1e-12 * std::abs(want.loss));
  EXPECT_NEAR(got.aux_loss, want.aux_loss, 1e-12 * std::abs(want.aux_loss));
  EXPECT_GT(want.aux_loss, 0.0);
  ASSERT_EQ(got.layer_stats.size(), want.layer_stats.size());
  int64_t dropped = 0;
  for (size_t l = 0; l < got.layer_stats.size(); ++l) {
    const ExpertLoadStats& mine = got.layer_stats[l];
    const ExpertLoadStats& ref = want.layer_stats[l];
    EXPECT_EQ(mine.tokens_per_expert, ref.tokens_per_expert) << "layer " << l;
    EXPECT_EQ(mine.dropped_pairs, ref.dropped_pairs) << "layer " << l;
    EXPECT_NEAR(mine.entropy_confidence, ref.entropy_confidence, 1e-12) << "layer " << l;
    EXPECT_NEAR(mine.entropy_load, ref.entropy_load, 1e-12) << "layer " << l;
    EXPECT_EQ(mine.dispatch.forward_payload_bytes, mine.dispatch.minimum_payload_bytes)
        << "layer " << l;
    if (ep > 1 && config.capacity_factor == 0) {  // (with capacity, all may be dropped)
      EXPECT_GT(mine.dispatch.forward_payload_bytes, 0) << "layer " << l;
    }
    dropped += ref.dropped_pairs;
  }
  if (config.capacity_factor > 0) {
    EXPECT_GT(dropped, 0) << "the capacity case drops nothing";
  }

  // Gradients: replicated ones summed over dp, expert ones over edp.
  int experts_here = 0;
  for (Parameter& p : params.all()) {
    const Parameter* ref = reference.parameters().Find(p.name);
    ASSERT_NE(ref, nullptr) << p.name;
    ASSERT_EQ(p.global_shape, ref->global_shape) << p.name;
    std::vector<double> grad(p.grad.data<double>(), p.grad.data<double>() + p.grad.numel());
    Tensor summed = Tensor::Wrap(grad.data(), {p.grad.numel()}, DType::kF64);
    if (p.sharding.is_expert()) {
      ++experts_here;
      const int owner = p.sharding.expert / (static_cast<int>(config.n_experts) / ep);
      EXPECT_EQ(owner, grid->ep_rank()) << p.name << " is held by the wrong ep rank";
      groups->expert_data_parallel().AllReduce(summed, parallel::ReduceOp::kSum);
    } else {
      groups->data_parallel().AllReduce(summed, parallel::ReduceOp::kSum);
    }
    const std::vector<double> want_box = Box(*ref, p);
    ExpectClose(grad.data(), want_box.data(), p.grad.numel(), 1e-10, p.name);
  }
  // Three weights per local expert per layer, and no other expert's.
  EXPECT_EQ(experts_here, 3 * config.n_layers * config.n_experts / ep);
}

class ExpertParallelModelTest : public testing::TestWithParam<Case> {};

TEST_P(ExpertParallelModelTest, MatchesSingleProcess) {
  const int world = World().size();
  // Every ep that divides the world: ep = world (dp = ep), and smaller ep with expert-data-
  // parallel replicas (ep 2 · edp 2 at world 4; ep 1 · dp = world: data parallel only); with
  // tp 2, ep 2 when the world has 4 ranks (tp2 · ep2).
  for (int ep = 1; ep <= world; ep *= 2) {
    if (world % ep == 0) CheckLayout(GetParam(), /*tp=*/1, ep);
  }
  if (world == 4) CheckLayout(GetParam(), /*tp=*/2, /*ep=*/2);
}

INSTANTIATE_TEST_SUITE_P(Configs, ExpertParallelModelTest, testing::ValuesIn(Cases()),
                         [](const testing::TestParamInfo<Case>& info) { return info.param.name; });

}  // namespace
}  // namespace aoetron::expert_parallel_test
