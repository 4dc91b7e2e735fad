#include "launcher/bench.h"

#include <omp.h>
#include <sys/resource.h>

#include <chrono>
#include <sstream>

#include "absl/strings/str_format.h"
#include "core/timing.h"
#include "launcher/config_json.h"
#include "launcher/json_writer.h"
#include "models/flop_count.h"

namespace aoetron {

absl::StatusOr<BenchResult> RunBench(config::TrainConfig config, const BenchOptions& options,
                                     TrainerParallelism parallelism) {
  if (options.warmup_steps < 0 || options.timed_steps < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bench: need warm-up steps ≥ 0 and timed steps ≥ 1 (got %d and %d)",
                        options.warmup_steps, options.timed_steps));
  }
  config.mutable_data()->set_source(config::DataSection::synthetic);
  config.mutable_train()->set_eval_interval(0);
  // Nothing is printed in bench mode: the trainer's streams go nowhere.
  std::ostringstream discarded;  // declared before the trainer, so it outlives it
  TrainerIo io;
  io.out = &discarded;
  io.err = &discarded;
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(config, io, parallelism);
  if (!trainer.ok()) return trainer.status();

  for (int64_t s = 0; s < options.warmup_steps; ++s) {
    absl::StatusOr<StepResult> step = (*trainer)->RunStep(s, /*summarise_experts=*/false);
    if (!step.ok()) return step.status();
  }
  BenchResult result;
  // Ranks start the timed steps together.
  if (parallelism.world != nullptr) parallelism.world->Barrier();
  const auto start = SteadyClock::now();
  CommSeconds comm;
  for (int64_t s = 0; s < options.timed_steps; ++s) {
    absl::StatusOr<StepResult> step =
        (*trainer)->RunStep(options.warmup_steps + s, /*summarise_experts=*/false);
    if (!step.ok()) return step.status();
    result.final_loss = step->loss;
    comm += step->comm;
  }
  const double seconds = SecondsSince(start);

  result.warmup_steps = options.warmup_steps;
  result.timed_steps = options.timed_steps;
  result.step_s = seconds / static_cast<double>(options.timed_steps);
  result.comm = comm / static_cast<double>(options.timed_steps);
  result.ranks = parallelism.world != nullptr ? parallelism.world->size() : 1;
  result.tokens_per_step = (*trainer)->tokens_per_step();
  result.flops_per_step = (*trainer)->flops_per_step();
  result.tokens_per_s = static_cast<double>(result.tokens_per_step) / result.step_s;
  result.model_flops_per_s = result.flops_per_step / result.step_s;
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  result.peak_rss_bytes = static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux: KiB
  result.threads = omp_get_max_threads();
  result.parameters = (*trainer)->model().parameters().num_elements();
  result.active_matmul_parameters = ActiveMatmulParameters((*trainer)->model().config());
  result.config = config;
  return result;
}

std::string BenchResultJson(const BenchResult& r) {
  return JsonObjectWriter()
      .Number("tokens_per_s", r.tokens_per_s)
      .Number("step_s", r.step_s)
      .Number("comm_s", r.comm.total())
      .Number("comm_tp_s", r.comm.tp)
      .Number("comm_ep_s", r.comm.ep)
      .Number("comm_dp_s", r.comm.dp)
      .Number("comm_edp_s", r.comm.edp)
      .Number("comm_world_s", r.comm.world)
      .Integer("ranks", r.ranks)
      .Number("model_flops_per_s", r.model_flops_per_s)
      .Integer("peak_rss_bytes", r.peak_rss_bytes)
      .Integer("threads", r.threads)
      .Integer("timed_steps", r.timed_steps)
      .Integer("warmup_steps", r.warmup_steps)
      .Integer("tokens_per_step", r.tokens_per_step)
      .Number("flops_per_step", r.flops_per_step)
      .Integer("parameters", r.parameters)
      .Integer("active_matmul_parameters", r.active_matmul_parameters)
      .Number("final_loss", r.final_loss)
      .Raw("config", TrainConfigJson(r.config))
      .Finish();
}

}  // namespace aoetron
