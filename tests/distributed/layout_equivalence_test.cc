// The whole trainer on every parallel layout against the one-process run, under mpirun.
//
// For each layout of kLayouts whose world size is this job's (ctest runs the binary at np 1, 2
// and 4), every rank
//   1. trains the one-process reference in-process (SingleProcessGroups): the same config with
//      micro-batch dp·B, so that each reference micro-batch holds exactly the samples of one
//      micro-batch step of the dp ranks (the aux loss's balance statistics are taken over the dp
//      group, i.e. over those same tokens);
//   2. trains the layout itself (tp, ep, dp = world / tp, ZeRO-1 on or off) on the job's ranks;
//   3. requires, at each of 5 steps, the loss, aux loss and gradient norm to match the reference,
//      and after the 5 steps every parameter box this rank holds to match the same box of the
//      reference's global parameter (Parameter::local_offset/local_shape, found by name);
//      and the held-out loss (3 micro-batches spread over the dp ranks) to match;
//   4. for ZeRO-1 layouts, trains the same layout without ZeRO-1 and requires bit-identical
//      losses, norms and parameters, and that GatherOptimizerState gives AdamW's m and v bit for
//      bit.
// Tolerance (f32): relative 1e-5 for loss, aux loss and norm; for parameters the max |error| over
// a tensor relative to its max |value|, 1e-5 (AdamW with ε = 1e-3, see LayoutConfig). Only
// summation orders differ between layouts (the dp sum of micro-batch gradients, tp partial sums,
// double-precision norm terms); measured errors are printed per layout.
//
// Bf16LayoutEquivalenceTest repeats steps 1–4 with model.precision = bf16 against the
// one-process bf16 run (tolerances derived at kBf16Tolerance).
//
// Adding a layout is one line in kLayouts.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/device_transfer.h"
#include "core/ops/elementwise.h"
#include "launcher/config_loader.h"
#include "launcher/trainer.h"
#include "parallel/process_groups.h"
#include "tests/parallel/mpi_test_environment.h"
#include "tests/tensor_parallel/compare.h"

namespace aoetron {
namespace {

constexpr int kSteps = 5;
constexpr double kTolerance = 1e-5;

struct Layout {
  const char* name;
  int world;
  int tp;
  int ep;
  bool zero1;
  const char* ffn;           // dense | moe | aoe
  const char* options = "";  // more overrides, comma-separated: the MoE design-space options
};

// Every router option at once (issue 12): fine-grained experts (8 of width 24, top-4), a shared
// expert, sigmoid scores, the z-loss and the aux-loss-free bias, which moves every step and so
// decides selections from step 2 on — the same on every layout, or the losses part at once.
constexpr const char* kMoeOptions =
    "model.granularity=2,model.n_shared_experts=1,model.d_shared=16,model.router_score=sigmoid,"
    "model.z_loss_coeff=0.01,model.expert_bias_rate=0.01";
// AoE with its own balancing choices: the bias on the norms, a shared expert, the z-loss.
constexpr const char* kAoeOptions =
    "model.n_shared_experts=1,model.d_shared=16,model.z_loss_coeff=0.01,"
    "model.expert_bias_rate=0.01";

// AoE's blockwise memory mode in blocks of 3 of the 4 experts: a full and a narrower block (the
// one-process reference runs the same mode); then with AoE's balancing options on top.
constexpr const char* kBlockwise = "model.aoe_memory=blockwise,model.aoe_score_block=3";
constexpr const char* kBlockwiseOptions =
    "model.aoe_memory=blockwise,model.aoe_score_block=3,model.n_shared_experts=1,"
    "model.d_shared=16,model.z_loss_coeff=0.01,model.expert_bias_rate=0.01";

// name, world, tp, ep, zero1, model. dp = world / tp.
const Layout kLayouts[] = {
    {"dense_dp1_zero1", 1, 1, 1, true, "dense"},
    {"aoe_dp1_zero1", 1, 1, 1, true, "aoe"},
    {"dense_dp2", 2, 1, 1, false, "dense"},
    {"dense_dp2_zero1", 2, 1, 1, true, "dense"},
    {"aoe_dp2", 2, 1, 1, false, "aoe"},
    {"moe_dp2_zero1", 2, 1, 1, true, "moe"},
    {"dense_dp4", 4, 1, 1, false, "dense"},
    {"dense_dp4_zero1", 4, 1, 1, true, "dense"},
    {"aoe_dp4_zero1", 4, 1, 1, true, "aoe"},
    {"dense_tp2", 2, 2, 1, false, "dense"},
    {"moe_tp2", 2, 2, 1, false, "moe"},
    {"aoe_tp2", 2, 2, 1, false, "aoe"},
    {"moe_ep2", 2, 1, 2, false, "moe"},
    {"aoe_ep2", 2, 1, 2, false, "aoe"},
    {"aoe_ep2_zero1", 2, 1, 2, true, "aoe"},
    {"moe_ep4", 4, 1, 4, false, "moe"},
    {"aoe_ep4", 4, 1, 4, false, "aoe"},
    {"aoe_tp2_ep2", 4, 2, 2, false, "aoe"},
    {"moe_tp2_ep2_zero1", 4, 2, 2, true, "moe"},
    {"dense_tp2_dp2", 4, 2, 1, false, "dense"},
    {"dense_tp2_dp2_zero1", 4, 2, 1, true, "dense"},
    {"aoe_ep2_dp2", 4, 1, 2, false, "aoe"},
    {"aoe_ep2_dp2_zero1", 4, 1, 2, true, "aoe"},
    {"moe_ep2_dp2", 4, 1, 2, false, "moe"},
    {"moe_options_dp1_zero1", 1, 1, 1, true, "moe", kMoeOptions},
    {"moe_options_dp2_zero1", 2, 1, 1, true, "moe", kMoeOptions},
    {"moe_options_tp2", 2, 2, 1, false, "moe", kMoeOptions},
    {"moe_options_ep2", 2, 1, 2, false, "moe", kMoeOptions},
    {"aoe_options_tp2", 2, 2, 1, false, "aoe", kAoeOptions},
    {"aoe_options_ep2_zero1", 2, 1, 2, true, "aoe", kAoeOptions},
    {"moe_options_tp2_ep2_zero1", 4, 2, 2, true, "moe", kMoeOptions},
    {"aoe_options_ep2_dp2", 4, 1, 2, false, "aoe", kAoeOptions},
    {"aoe_blockwise_dp2", 2, 1, 1, false, "aoe", kBlockwise},
    {"aoe_blockwise_ep2", 2, 1, 2, false, "aoe", kBlockwise},
    {"aoe_blockwise_tp2_ep2", 4, 2, 2, false, "aoe", kBlockwise},
    {"aoe_blockwise_ep2_dp2_zero1", 4, 1, 2, true, "aoe", kBlockwise},
    {"aoe_blockwise_options_ep2", 2, 1, 2, false, "aoe", kBlockwiseOptions},
};

void PrintTo(const Layout& layout, std::ostream* os) { *os << layout.name; }

parallel::DistributedContext& Ctx() { return parallel::mpi_test::Context(); }

// Micro-batch B = 2, global batch 8: dp 1 runs 4 micro-batches, dp 2 two, dp 4 one.
// `reference`: the one-process run (tp = ep = 1).
config::TrainConfig LayoutConfig(const Layout& layout, int micro_batch, bool zero1,
                                 bool reference = false, const char* precision = "fp32") {
  std::vector<std::string> overrides = {
      absl::StrCat("model.precision=", precision),
      "model.vocab_size=64",
      "model.d_model=32",
      "model.n_layers=2",
      "model.n_heads=4",
      "model.seq_len=16",
      "model.d_ffn=48",
      absl::StrCat("model.ffn=", layout.ffn),
      "model.n_experts=4",
      "model.top_k=2",
      "model.d_low=8",
      "model.aux_loss_coeff=0.01",
      "optimizer.lr=3e-3",
      "optimizer.min_lr=3e-4",
      "optimizer.grad_clip=0.5",  // clips on some steps: the clip path is compared too
      // A well-conditioned ε (as the parity tests): with 1e-8, AdamW's m̂/√v̂ ≈ ±1 for a
      // gradient element that is pure summation-order noise, and the layouts' parameters then
      // differ by up to ~lr in such elements (measured 1–3e-5 of a tensor's max after 5 steps).
      "optimizer.eps=1e-3",
      "schedule.warmup_steps=1",
      absl::StrCat("train.steps=", kSteps),
      absl::StrCat("train.micro_batch_size=", micro_batch),
      "train.global_batch_size=8",
      // Evaluation (called directly): 3 held-out micro-batches, so dp 2 and 4 pad a round.
      "train.eval_interval=5",
      "train.eval_steps=3",
      "data.source=synthetic",
      absl::StrCat("data.seed=", parallel::mpi_test::TestSeed() % 100000),
      absl::StrCat("train.seed=", parallel::mpi_test::TestSeed() % 77777),
      "parallel.threads=1",
      // Small buckets, so that parameters span buckets and buckets mix parameters.
      "parallel.grad_bucket_mb=0.01",
      absl::StrCat("parallel.zero1=", zero1 ? "true" : "false"),
  };
  for (absl::string_view option : absl::StrSplit(layout.options, ',', absl::SkipEmpty())) {
    overrides.emplace_back(option);
  }
  absl::StatusOr<config::TrainConfig> config = LoadTrainConfig("", overrides);
  AOETRON_CHECK(config.ok()) << config.status();
  // The layout last: LoadTrainConfig validates for a world of one.
  config->mutable_parallel()->set_tp(reference ? 1 : layout.tp);
  config->mutable_parallel()->set_ep(reference ? 1 : layout.ep);
  return *config;
}

struct TrainedRun {
  std::vector<StepResult> steps;
  std::unique_ptr<Trainer> trainer;
};

TrainedRun Train(const config::TrainConfig& config, TrainerParallelism parallelism) {
  static std::ostringstream sink;
  TrainedRun run;
  absl::StatusOr<std::unique_ptr<Trainer>> trainer =
      Trainer::Create(config, TrainerIo{&sink, &sink, false}, parallelism);
  AOETRON_CHECK(trainer.ok()) << trainer.status();
  run.trainer = *std::move(trainer);
  for (int s = 0; s < kSteps; ++s) {
    absl::StatusOr<StepResult> step = run.trainer->RunStep(s);
    AOETRON_CHECK(step.ok()) << step.status();
    run.steps.push_back(*step);
  }
  return run;
}

// AdamW's m and v of a trained run's whole replica, on the host (GatherOptimizerState).
std::pair<Tensor, Tensor> GatheredMoments(Trainer& trainer) {
  const int64_t n = trainer.model().parameters().num_elements();
  std::pair<Tensor, Tensor> moments{Tensor::Empty({n}, DType::kF32),
                                    Tensor::Empty({n}, DType::kF32)};
  trainer.GatherOptimizerState(moments.first, moments.second);
  return moments;
}

// The job's process groups for `layout` (collective over the world).
parallel::ProcessGroups LayoutGroups(const Layout& layout) {
  absl::StatusOr<parallel::ProcessGrid> grid =
      parallel::ProcessGrid::Create(Ctx().world_size(), Ctx().world_rank(), layout.tp, layout.ep);
  AOETRON_CHECK(grid.ok()) << grid.status();
  absl::StatusOr<parallel::ProcessGroups> groups =
      parallel::CreateProcessGroups(*grid, Ctx().world());
  AOETRON_CHECK(groups.ok()) << groups.status();
  return *std::move(groups);
}

double Relative(double actual, double expected) {
  return std::abs(actual - expected) / std::max(std::abs(expected), 1e-30);
}

// Steps 1–4 of the file comment at `precision` (fp32 or bf16): per-step values and the held-out
// loss within relative `tolerance`, parameters within `param_tolerance`.
// `param_tolerance` for the parameters after kSteps steps (nullopt: measured and printed only).
void ExpectMatchesOneProcessRun(const Layout& layout, const char* precision, double tolerance,
                                std::optional<double> param_tolerance) {
  const int dp = layout.world / layout.tp;
  const int micro_batch = 2;

  // 1. The reference, in this process.
  const TrainedRun reference = Train(
      LayoutConfig(layout, micro_batch * dp, /*zero1=*/false, /*reference=*/true, precision), {});

  // 2. The layout on the job's ranks.
  parallel::ProcessGroups groups = LayoutGroups(layout);
  TrainerParallelism parallelism{&groups, &Ctx().world(), nullptr};
  const TrainedRun run =
      Train(LayoutConfig(layout, micro_batch, layout.zero1, false, precision), parallelism);

  // 3. Step by step, then the parameters.
  double worst_step = 0.0, worst_param = 0.0;
  for (int s = 0; s < kSteps; ++s) {
    const StepResult& a = run.steps[s];
    const StepResult& e = reference.steps[s];
    EXPECT_LE(Relative(a.loss, e.loss), tolerance) << "step " << s + 1 << " loss";
    EXPECT_LE(Relative(a.grad_norm, e.grad_norm), tolerance) << "step " << s + 1 << " norm";
    if (e.aux_loss != 0.0) {
      EXPECT_LE(Relative(a.aux_loss, e.aux_loss), tolerance) << "step " << s + 1 << " aux";
    } else {
      EXPECT_EQ(a.aux_loss, 0.0);
    }
    worst_step = std::max({worst_step, Relative(a.loss, e.loss), Relative(a.grad_norm, e.grad_norm),
                           e.aux_loss != 0.0 ? Relative(a.aux_loss, e.aux_loss) : 0.0});
  }
  ParameterSet& reference_params = reference.trainer->model().parameters();
  for (const Parameter& p : run.trainer->model().parameters().all()) {
    Parameter* whole = reference_params.Find(p.name);
    ASSERT_NE(whole, nullptr) << p.name;
    const Tensor box = tp_test::Box(whole->master, p.local_offset, p.local_shape);
    const double error = tp_test::RelativeMaxError(p.master, box);
    if (param_tolerance.has_value()) {
      EXPECT_LE(error, *param_tolerance) << p.name;
    }
    worst_param = std::max(worst_param, error);
  }
  if (Ctx().world_rank() == 0) {
    std::cout << "layout " << layout.name << " (" << precision
              << "): worst relative error, per-step values " << worst_step << ", parameters after "
              << kSteps << " steps " << worst_param << std::endl;
  }

  // The held-out loss: the layout's ranks share micro-batches of B; the reference evaluates the
  // same micro-batches of B with its trained parameters copied into a one-process trainer.
  {
    static std::ostringstream sink;
    absl::StatusOr<std::unique_ptr<Trainer>> trainer =
        Trainer::Create(LayoutConfig(layout, micro_batch, false, /*reference=*/true, precision),
                        TrainerIo{&sink, &sink});
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    ParameterSet& evaluated = (*trainer)->model().parameters();
    ops::Copy(reference_params.flat_masters(), evaluated.flat_masters());
    evaluated.RefreshComputeCopy();
    absl::StatusOr<double> expected = (*trainer)->Evaluate();
    absl::StatusOr<double> actual = run.trainer->Evaluate();
    ASSERT_TRUE(expected.ok() && actual.ok());
    EXPECT_LE(Relative(*actual, *expected), tolerance) << "val_loss";
  }

  // 4. ZeRO-1 against the same layout without it: bit for bit.
  if (!layout.zero1) return;
  const TrainedRun plain =
      Train(LayoutConfig(layout, micro_batch, /*zero1=*/false, false, precision), parallelism);
  for (int s = 0; s < kSteps; ++s) {
    EXPECT_EQ(run.steps[s].loss, plain.steps[s].loss) << "step " << s + 1;
    EXPECT_EQ(run.steps[s].grad_norm, plain.steps[s].grad_norm) << "step " << s + 1;
  }
  ParameterSet& zero_params = run.trainer->model().parameters();
  ParameterSet& plain_params = plain.trainer->model().parameters();
  EXPECT_TRUE(tp_test::BitwiseEqual(zero_params.flat_masters(), plain_params.flat_masters()))
      << "parameters after ZeRO-1 differ from plain AdamW";
  const int64_t n = zero_params.num_elements();
  const auto [zero_m, zero_v] = GatheredMoments(*run.trainer);
  const auto [plain_m, plain_v] = GatheredMoments(*plain.trainer);
  EXPECT_TRUE(tp_test::BitwiseEqual(zero_m, plain_m)) << "AdamW m";
  EXPECT_TRUE(tp_test::BitwiseEqual(zero_v, plain_v)) << "AdamW v";
  EXPECT_EQ(run.trainer->optimizer_steps(), kSteps);
  // The shards this rank holds are views of the same moments.
  int64_t held = 0;
  for (const parallel::OptimizerStatePiece& piece :
       run.trainer->distributed_optimizer()->LocalStatePieces()) {
    const int64_t offset = zero_params.all()[piece.segment].flat_offset;
    const Tensor expected = plain_m.Rows(offset + piece.segment_begin, offset + piece.segment_end);
    EXPECT_TRUE(tp_test::BitwiseEqual(piece.m, expected)) << "piece of segment " << piece.segment;
    held += piece.segment_end - piece.segment_begin;
  }
  EXPECT_GT(held, 0);
  EXPECT_LT(held, dp > 1 ? n : n + 1);  // a shard, not the whole replica, when dp > 1
}

class LayoutEquivalenceTest : public ::testing::TestWithParam<Layout> {};

TEST_P(LayoutEquivalenceTest, MatchesTheOneProcessRun) {
  const Layout& layout = GetParam();
  if (layout.world != Ctx().world_size()) {
    GTEST_SKIP() << "needs " << layout.world << " ranks";
  }
  ExpectMatchesOneProcessRun(layout, "fp32", kTolerance, kTolerance);
}

// Mixed precision (model.precision = bf16): every layout against the one-process bf16 run.
// The layouts' f32 sums differ in their last bits exactly as in fp32; what is new is that such a
// difference can flip the rounding of a bf16 activation (or of an activation gradient) by one
// bf16 spacing, at most 2⁻⁷ of the value and 2⁻⁸ on average over a binade. Tolerances:
//   - losses, aux losses, gradient norms and the held-out loss: 2⁻⁸. Each is a mean or a norm
//     over thousands of elements of which a few flipped, so it moves by far less than one
//     spacing (measured: below 3e-4). Steps 2–5 and the held-out loss are computed from the
//     trained parameters, so they are also the check on the parameters.
//   - parameters element by element: no tolerance, only the measured error is printed. AdamW
//     divides each element's update by its own gradient history (ε = 1e-3): an element whose
//     gradient is near zero moves by up to lr per step in either direction, and a bf16 rounding
//     flip upstream can change its gradient by a spacing of the terms it sums, not of itself. So
//     no a-priori bound tighter than the trivial 2·kSteps·lr exists per element (measured:
//     0.3–2% of a tensor's max |value| in tp layouts). ZeRO-1 against plain AdamW is still
//     compared bit for bit in bf16 (step 4), parameters and moments included.
// Measured errors are printed per layout.
constexpr double kBf16Tolerance = 1.0 / 256;

class Bf16LayoutEquivalenceTest : public ::testing::TestWithParam<Layout> {};

TEST_P(Bf16LayoutEquivalenceTest, MatchesTheOneProcessBf16Run) {
  const Layout& layout = GetParam();
  if (layout.world != Ctx().world_size()) {
    GTEST_SKIP() << "needs " << layout.world << " ranks";
  }
  ExpectMatchesOneProcessRun(layout, "bf16", kBf16Tolerance, std::nullopt);
}

// The device-resident step: the same layout on parallel.device strict_cpu, where any host access
// to tensor data outside core/ops kernels, device copies and communicator backends ends the
// process naming the caller (core/device.h). Same kernels in the same order, so the losses,
// norms, parameters, AdamW moments and held-out loss must equal the cpu run's bit for bit.
class StrictDeviceTest : public ::testing::TestWithParam<Layout> {};

TEST_P(StrictDeviceTest, TrainsWithTheCpuNumbersBitForBit) {
  const Layout& layout = GetParam();
  if (layout.world != Ctx().world_size()) {
    GTEST_SKIP() << "needs " << layout.world << " ranks";
  }
  parallel::ProcessGroups groups = LayoutGroups(layout);
  TrainerParallelism parallelism{&groups, &Ctx().world(), nullptr};
  const config::TrainConfig cpu_config = LayoutConfig(layout, 2, layout.zero1);
  config::TrainConfig strict_config = cpu_config;
  strict_config.mutable_parallel()->set_device(config::ParallelSection::strict_cpu);
  const TrainedRun cpu = Train(cpu_config, parallelism);
  const TrainedRun strict = Train(strict_config, parallelism);
  ASSERT_EQ(strict.trainer->device(), Device::StrictCpu());
  for (int s = 0; s < kSteps; ++s) {
    EXPECT_EQ(strict.steps[s].loss, cpu.steps[s].loss) << "step " << s + 1;
    EXPECT_EQ(strict.steps[s].aux_loss, cpu.steps[s].aux_loss) << "step " << s + 1;
    EXPECT_EQ(strict.steps[s].grad_norm, cpu.steps[s].grad_norm) << "step " << s + 1;
  }
  ParameterSet& strict_params = strict.trainer->model().parameters();
  EXPECT_TRUE(tp_test::BitwiseEqual(CopyToDevice(strict_params.flat_values(), Device::Cpu()),
                                    cpu.trainer->model().parameters().flat_values()))
      << "parameters";
  const auto [cpu_m, cpu_v] = GatheredMoments(*cpu.trainer);
  const auto [strict_m, strict_v] = GatheredMoments(*strict.trainer);
  EXPECT_TRUE(tp_test::BitwiseEqual(strict_m, cpu_m)) << "AdamW m";
  EXPECT_TRUE(tp_test::BitwiseEqual(strict_v, cpu_v)) << "AdamW v";
  absl::StatusOr<double> cpu_eval = cpu.trainer->Evaluate();
  absl::StatusOr<double> strict_eval = strict.trainer->Evaluate();
  ASSERT_TRUE(cpu_eval.ok() && strict_eval.ok());
  EXPECT_EQ(*strict_eval, *cpu_eval) << "val_loss";
}

INSTANTIATE_TEST_SUITE_P(Layouts, LayoutEquivalenceTest, ::testing::ValuesIn(kLayouts),
                         [](const ::testing::TestParamInfo<Layout>& info) {
                           return std::string(info.param.name);
                         });
INSTANTIATE_TEST_SUITE_P(Layouts, Bf16LayoutEquivalenceTest, ::testing::ValuesIn(kLayouts),
                         [](const ::testing::TestParamInfo<Layout>& info) {
                           return std::string(info.param.name);
                         });
INSTANTIATE_TEST_SUITE_P(Layouts, StrictDeviceTest, ::testing::ValuesIn(kLayouts),
                         [](const ::testing::TestParamInfo<Layout>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace aoetron
