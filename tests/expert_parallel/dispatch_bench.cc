// expert_parallel_bench: forward + backward of the bench model (configs/bench_aoe_small shape:
// d 256, 4 layers, 8 experts, top-2, r 64, seq 256) on an expert-parallel layout, printing per
// step and per rank the dispatched bytes next to their analytic minimum, the time inside the
// dispatch collectives and the step time. Model work only (no optimizer, no gradient sync).
//
//   mpirun -np 2 build/bin/expert_parallel_bench --ep=2 [--ffn=aoe|moe] [--batch=8] [--steps=5]
//   build/bin/expert_parallel_bench --ep=1          (the one-process baseline, same per-rank batch)
//
// Prints one JSON line from rank 0; per-rank figures are rank 0's, loads and totals are summed
// over the ranks.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <random>
#include <string>

#include "models/gpt_model.h"
#include "parallel/abort.h"
#include "parallel/distributed.h"
#include "parallel/process_groups.h"

namespace aoetron {
namespace {

struct Options {
  int ep = 1;
  std::string ffn = "aoe";
  int64_t batch = 8;
  int steps = 5;
};

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* flag) -> const char* {
      const size_t n = std::strlen(flag);
      return arg.compare(0, n, flag) == 0 ? arg.c_str() + n : nullptr;
    };
    if (const char* v = value("--ep=")) {
      o.ep = std::stoi(v);
    } else if (const char* v = value("--ffn=")) {
      o.ffn = v;
    } else if (const char* v = value("--batch=")) {
      o.batch = std::stoll(v);
    } else if (const char* v = value("--steps=")) {
      o.steps = std::stoi(v);
    } else {
      std::cerr << "unknown flag " << arg << "\n";
      std::exit(2);
    }
  }
  return o;
}

int Run(parallel::DistributedContext& ctx, const Options& o) {
  absl::StatusOr<parallel::ProcessGrid> grid =
      parallel::ProcessGrid::Create(ctx.world_size(), ctx.world_rank(), 1, o.ep);
  if (!grid.ok()) parallel::AbortAll(grid.status());
  absl::StatusOr<parallel::ProcessGroups> groups =
      parallel::CreateProcessGroups(*grid, ctx.world());
  if (!groups.ok()) parallel::AbortAll(groups.status());

  ModelConfig c;  // configs/bench_aoe_small.textproto's model
  c.vocab_size = 8192;
  c.d_model = 256;
  c.n_layers = 4;
  c.n_heads = 4;
  c.seq_len = 256;
  c.d_ffn = 1024;
  c.ffn = o.ffn == "moe" ? FfnKind::kRouterMoe : FfnKind::kAoe;
  c.n_experts = 8;
  c.top_k = 2;
  c.d_low = 64;
  c.aux_loss_coeff = 0.01;
  GptModel model(c, *groups);
  model.parameters().Initialize(42);

  std::mt19937_64 rng(1234 + grid->dp_rank());
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(c.vocab_size - 1));
  std::vector<int32_t> tokens(o.batch * c.seq_len), targets(o.batch * c.seq_len);
  ActivationArena arena;
  double step_seconds = 0.0, exchange_seconds = 0.0, backward_exchange_seconds = 0.0;
  // payload, minimum, metadata, return, backward, received pairs, per-pair-copy payload
  int64_t bytes[7] = {};
  double load_max_over_mean = 0.0;
  const int warmup = 1;
  for (int step = 0; step < warmup + o.steps; ++step) {
    for (int32_t& t : tokens) t = token(rng);
    for (int32_t& t : targets) t = token(rng);
    ctx.world().Barrier();
    const auto start = std::chrono::steady_clock::now();
    StepOutputs out =
        model.ForwardBackward(Tensor::Wrap(tokens.data(), {o.batch, c.seq_len}, DType::kI32),
                              Tensor::Wrap(targets.data(), {o.batch, c.seq_len}, DType::kI32),
                              1.0 / grid->dp_size(), arena);
    ctx.world().Barrier();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (step < warmup) continue;
    step_seconds += seconds;
    for (const ExpertLoadStats& s : out.layer_stats) {
      const parallel::DispatchStats& d = s.dispatch;
      bytes[0] += d.forward_payload_bytes;
      bytes[1] += d.minimum_payload_bytes;
      bytes[2] += d.forward_metadata_bytes;
      bytes[3] += d.forward_return_bytes;
      bytes[4] += d.backward_bytes;
      bytes[5] += d.received_pairs;
      // What a dispatcher sending x once per PAIR (Megatron's all-to-all) would move.
      bytes[6] += d.peer_pairs * (c.d_model + (c.ffn == FfnKind::kAoe ? c.d_low : 0)) * 4;
      exchange_seconds += d.forward_exchange_seconds;
      backward_exchange_seconds += d.backward_exchange_seconds;
      load_max_over_mean += s.ep_load_max_over_mean / out.layer_stats.size();
    }
  }
  const int64_t per_step_payload = bytes[0] / o.steps, per_step_minimum = bytes[1] / o.steps;
  int64_t totals[2] = {per_step_payload, per_step_minimum};
  ctx.world().AllReduce(Tensor::Wrap(totals, {2}, DType::kI64), parallel::ReduceOp::kSum);
  if (ctx.world_rank() == 0) {
    std::printf(
        "{\"world\":%d,\"ep\":%d,\"ffn\":\"%s\",\"threads\":%d,\"tokens_per_rank\":%lld,"
        "\"step_s\":%.4f,\"forward_exchange_s\":%.4f,\"backward_exchange_s\":%.4f,"
        "\"rank0_bytes_per_step\":{\"payload\":%lld,\"analytic_minimum\":%lld,\"metadata\":%lld,"
        "\"return\":%lld,\"backward\":%lld,\"x_per_pair_payload\":%lld},"
        "\"all_ranks_payload_bytes_per_step\":%lld,\"all_ranks_minimum_bytes_per_step\":%lld,"
        "\"rank0_expert_pairs_per_step\":%lld,\"ep_load_max_over_mean\":%.3f}\n",
        ctx.world_size(), o.ep, o.ffn.c_str(), omp_get_max_threads(),
        static_cast<long long>(o.batch * c.seq_len), step_seconds / o.steps,
        exchange_seconds / o.steps, backward_exchange_seconds / o.steps,
        static_cast<long long>(per_step_payload), static_cast<long long>(per_step_minimum),
        static_cast<long long>(bytes[2] / o.steps), static_cast<long long>(bytes[3] / o.steps),
        static_cast<long long>(bytes[4] / o.steps), static_cast<long long>(bytes[6] / o.steps),
        static_cast<long long>(totals[0]), static_cast<long long>(totals[1]),
        static_cast<long long>(bytes[5] / o.steps), load_max_over_mean / o.steps);
  }
  return 0;
}

}  // namespace
}  // namespace aoetron

int main(int argc, char** argv) {
  absl::StatusOr<aoetron::parallel::DistributedContext> ctx =
      aoetron::parallel::InitializeDistributed(&argc, &argv);
  if (!ctx.ok()) {
    std::cerr << ctx.status() << "\n";
    return 1;
  }
  const aoetron::Options options = aoetron::Parse(argc, argv);
  aoetron::Run(*ctx, options);
  return ctx->Finalize().ok() ? 0 : 1;
}
