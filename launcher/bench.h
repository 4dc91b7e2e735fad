// Bench mode: training throughput of a config, as one JSON line.
//
// RunBench trains on synthetic data (whatever data.source says, so a bench needs no files and
// measures the runtime, not the disk) with evaluation and logging off: `warmup_steps`
// untimed steps (first-touch allocation, the arena reaching its peak, GEMM kernel selection),
// then `timed_steps` steps timed as a whole. Full optimizer steps are timed: data, forward,
// backward, clipping and AdamW.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "launcher/config.pb.h"
#include "launcher/trainer.h"

namespace aoetron {

struct BenchOptions {
  int64_t warmup_steps = 2;
  int64_t timed_steps = 10;
};

struct BenchResult {
  int64_t warmup_steps = 0;
  int64_t timed_steps = 0;
  double step_s = 0.0;             // mean wall time of a timed step
  CommSeconds comm;                // of which inside collectives, by group (rank 0's view)
  int ranks = 1;                   // processes in the job (tokens count the global batch)
  double tokens_per_s = 0.0;       // tokens_per_step / step_s
  double model_flops_per_s = 0.0;  // flops_per_step / step_s (models/flop_count.h)
  int64_t tokens_per_step = 0;
  double flops_per_step = 0.0;
  int64_t peak_rss_bytes = 0;  // getrusage ru_maxrss, whole process, at the end
  int threads = 0;             // OpenMP threads the kernels ran with
  int64_t parameters = 0;      // all parameters
  int64_t active_matmul_parameters = 0;
  double final_loss = 0.0;     // loss of the last timed step (a sanity check, not a result)
  config::TrainConfig config;  // as run: data.source synthetic, evaluation off
};

// Errors: an invalid config, a non-finite loss during the bench, or options < 0 / timed < 1.
// Collective in a multi-rank job (`parallelism`, as for Trainer::Create): every rank runs the
// same steps; tokens and FLOPs count the global batch of all ranks.
absl::StatusOr<BenchResult> RunBench(config::TrainConfig config, const BenchOptions& options,
                                     TrainerParallelism parallelism = {});

// {"tokens_per_s":…,"step_s":…,"comm_s":…,"comm_tp_s":…,"comm_ep_s":…,"comm_dp_s":…,
//  "comm_edp_s":…,"comm_world_s":…,"ranks":…,"model_flops_per_s":…,"peak_rss_bytes":…,"threads":…,
//  "timed_steps":…,"warmup_steps":…,"tokens_per_step":…,"flops_per_step":…,"parameters":…,
//  "active_matmul_parameters":…,"final_loss":…,"config":{…every field…}}
std::string BenchResultJson(const BenchResult& result);

}  // namespace aoetron
