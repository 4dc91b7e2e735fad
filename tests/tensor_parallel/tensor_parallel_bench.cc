// tensor_parallel_bench: time of one GptModel ForwardBackward with the whole world as one tp group,
// and how much of it the tensor-parallel all-reduces alone take.
//
//   mpirun -np 1 build/bin/tensor_parallel_bench --ffn=dense          # tp 1, the baseline
//   mpirun --oversubscribe -np 2 build/bin/tensor_parallel_bench --ffn=aoe
//
// The model is the bench shape (configs/bench_*_small: d 256, 4 layers, 4 heads, V 8192, d_ffn
// 1024, 8 experts, top-2, r 64) with d_wide 1336 (the derived 1337 does not split). After the
// model steps, the bench replays the step's all-reduces alone (the sizes of
// docs/tensor_parallel.md, "Bytes per layer") on the tp group, so the communication share is
// measured on the same ranks and transport. Prints on rank 0; nothing is checked here (the tests
// check the numbers).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "core/arena.h"
#include "models/gpt_model.h"
#include "parallel/abort.h"
#include "parallel/distributed.h"
#include "parallel/process_groups.h"

namespace aoetron {
namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

int Main(int argc, char** argv) {
  absl::StatusOr<parallel::DistributedContext> context =
      parallel::InitializeDistributed(&argc, &argv);
  if (!context.ok()) {
    std::cerr << context.status() << "\n";
    return 1;
  }
  std::string ffn = "aoe";
  int64_t batch = 4, seq = 256, steps = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const std::string& name) {
      return arg.rfind("--" + name + "=", 0) == 0 ? arg.substr(name.size() + 3) : std::string();
    };
    if (!value("ffn").empty()) {
      ffn = value("ffn");
    } else if (!value("batch").empty() && absl::SimpleAtoi(value("batch"), &batch)) {
    } else if (!value("seq").empty() && absl::SimpleAtoi(value("seq"), &seq)) {
    } else if (!value("steps").empty() && absl::SimpleAtoi(value("steps"), &steps)) {
    } else {
      parallel::AbortAll(absl::InvalidArgumentError(
          "usage: tensor_parallel_bench [--ffn=dense|moe|aoe] [--batch=4] [--seq=256] "
          "[--steps=5], got " +
          arg));
    }
  }
  {
    ModelConfig config;
    config.vocab_size = 8192;
    config.d_model = 256;
    config.n_layers = 4;
    config.n_heads = 4;
    config.seq_len = seq;
    config.d_ffn = 1024;
    config.n_experts = 8;
    config.top_k = 2;
    config.d_low = 64;
    config.d_wide = 1336;
    if (ffn == "dense") {
      config.ffn = FfnKind::kDense;
    } else if (ffn == "moe") {
      config.ffn = FfnKind::kRouterMoe;
    } else if (ffn == "aoe") {
      config.ffn = FfnKind::kAoe;
    } else {
      parallel::AbortAll(absl::InvalidArgumentError("--ffn must be dense, moe or aoe"));
    }
    const int tp = context->world_size();
    absl::StatusOr<parallel::ProcessGrid> grid =
        parallel::ProcessGrid::Create(tp, context->world_rank(), tp, 1);
    if (!grid.ok()) parallel::AbortAll(grid.status());
    absl::StatusOr<parallel::ProcessGroups> groups =
        parallel::CreateProcessGroups(*grid, context->world());
    if (!groups.ok()) parallel::AbortAll(groups.status());
    if (absl::Status s = ValidateParallelLayout(config, tp, 1); !s.ok()) parallel::AbortAll(s);

    GptModel model(config, *groups);
    model.parameters().Initialize(1);
    Tensor tokens = Tensor::Empty({batch, seq}, DType::kI32);
    for (int64_t i = 0; i < tokens.numel(); ++i) {
      tokens.data<int32_t>()[i] = static_cast<int32_t>((i * 7919) % config.vocab_size);
    }
    ActivationArena arena;
    model.ForwardBackward(tokens, tokens, 1.0, arena);  // warm-up: arena, oneDNN primitives
    parallel::Communicator& tp_group = groups->tensor_parallel();
    tp_group.Barrier();
    auto start = std::chrono::steady_clock::now();
    for (int64_t s = 0; s < steps; ++s) model.ForwardBackward(tokens, tokens, 1.0, arena);
    tp_group.Barrier();
    const double step_seconds = Seconds(start) / steps;

    // The step's all-reduces (f32 elements), in order: embedding; per layer attention forward,
    // FFN forward; loss (f64, counted as 2× f32 elements); LM head backward; per layer FFN
    // backward, attention backward.
    const int64_t n = batch * seq, d = config.d_model, k = config.top_k, r = config.d_low;
    const int64_t rows = config.ffn == FfnKind::kDense ? n : n * k;
    const int64_t ffn_backward = config.ffn == FfnKind::kAoe ? rows * (d + r) : rows * d;
    std::vector<int64_t> sizes = {n * d};
    for (int64_t l = 0; l < config.n_layers; ++l) {
      sizes.push_back(n * d);
      sizes.push_back(rows * d);
    }
    sizes.push_back(2 * n);      // row max [N] f64
    sizes.push_back(2 * 2 * n);  // Z and target logit [2, N] f64
    sizes.push_back(n * d);
    for (int64_t l = 0; l < config.n_layers; ++l) {
      sizes.push_back(ffn_backward);
      sizes.push_back(n * d);
    }
    int64_t total = 0;
    for (int64_t size : sizes) total += size;
    Tensor buffer = Tensor::Zeros({*std::max_element(sizes.begin(), sizes.end())}, DType::kF32);
    double comm_seconds = 0.0;
    if (tp > 1) {
      tp_group.Barrier();
      start = std::chrono::steady_clock::now();
      for (int64_t s = 0; s < steps; ++s) {
        for (int64_t size : sizes)
          tp_group.AllReduce(buffer.Rows(0, size), parallel::ReduceOp::kSum);
      }
      tp_group.Barrier();
      comm_seconds = Seconds(start) / steps;
    }
    if (context->world_rank() == 0) {
      const double mib = total * 4.0 / (1 << 20);
      std::cout << "tensor_parallel_bench: ffn " << ffn << ", tp " << tp << ", tokens " << n << ", "
                << omp_get_max_threads() << " thread(s) per rank\n"
                << "  ForwardBackward " << step_seconds * 1e3 << " ms/step, " << n / step_seconds
                << " tokens/s per tp group\n"
                << "  tp all-reduces: " << sizes.size() << " per step, " << mib
                << " MiB all-reduced (each rank sends and receives " << mib * 2 * (tp - 1) / tp
                << " MiB), alone " << comm_seconds * 1e3 << " ms/step ("
                << 100.0 * comm_seconds / step_seconds << "% of the step)\n";
    }
  }
  return context->Finalize().ok() ? 0 : 1;
}

}  // namespace
}  // namespace aoetron

int main(int argc, char** argv) { return aoetron::Main(argc, argv); }
