// Trainer: one rank's part of a training run of a GptModel, from a validated TrainConfig.
//
// The run is laid out over tp × ep × dp ranks (TrainerParallelism; one process by default). The
// global batch (train.global_batch_size, docs/config.md) is cut into micro-batches of
// micro_batch_size; each data-parallel rank runs M = global / (micro · dp) of them per step, and
// micro-batch m of rank r holds the same samples as micro-batch m·dp + r of a one-rank run
// (batch_source.h), so every layout trains on the same sequences.
//
// Each optimizer step (0-based s; logs and errors call it step s + 1):
//   1. zero the gradients;
//   2. for each of the M micro-batches: take this rank's next micro-batch from the training
//      stream, ForwardBackward with loss_scale 1/(M·dp), so that after the sum over dp the
//      gradient is that of the mean loss over the global batch;
//   3. agree on the loss: one world all-reduce of (Σ loss, Σ aux loss, a non-finite flag per
//      rank); a non-finite loss on any rank stops every rank at this step, naming the ranks;
//   4. gradient sync over dp (edp for expert weights), in buckets: an all-reduce (GradientSync),
//      or with parallel.zero1 a reduce-scatter (DistributedOptimizer);
//   5. global gradient norm ‖g‖, each unique element counted once (gradient_sync.h);
//      a non-finite norm stops the run before the optimizer touches the weights;
//   6. clip to optimizer.grad_clip;
//   7. lr = schedule(s); AdamW step at lr (with ZeRO-1: on this rank's shard, then an
//      all-gather of the parameters).
// Every train.eval_interval steps (and after the last) the model is evaluated on
// train.eval_steps held-out micro-batches (always the same ones, spread over the dp ranks).
// Only global rank 0 writes logs and the metrics file; every rank computes the same numbers.
//
// Errors: Create's are the config's or the data's; Train/RunStep return an error (a) agreed by
// every rank (non-finite loss or norm: every rank returns it at the same step) or (b) local to
// this rank (a data error). In a multi-rank job the caller must end the job on either
// (parallel::AbortAll), never return from main while other ranks may wait in a collective.
//
// Deterministic given the config and the layout: data, initialisation, kernels and reductions
// do not depend on timing. Not thread-safe; kernels use the OpenMP threads set by Create.
#pragma once

#include <csignal>
#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/arena.h"
#include "core/optim/lr_schedule.h"
#include "data/bpe_tokenizer.h"
#include "launcher/batch_source.h"
#include "launcher/checkpoint/checkpoint_manager.h"
#include "launcher/config.pb.h"
#include "launcher/config_conversion.h"
#include "launcher/data_parallel_optimizer.h"
#include "launcher/step_metrics.h"
#include "models/gpt_model.h"
#include "parallel/communicator.h"
#include "parallel/distributed_optimizer.h"
#include "parallel/process_groups.h"
#include "parallel/watchdog.h"

namespace aoetron {

// Where the trainer writes. Streams must outlive the trainer. On ranks other than global rank 0
// nothing is written (the trainer replaces them with a sink).
struct TrainerIo {
  std::ostream* out = &std::cout;  // one line per logged step (human or JSON)
  std::ostream* err = &std::cerr;  // notes and the run summary
  bool out_is_terminal = false;    // decides logging.progress auto
};

// The parallel environment; all pointers must outlive the trainer. The defaults are one process.
struct TrainerParallelism {
  parallel::ProcessGroups* groups = nullptr;  // null: parallel::SingleProcessGroups()
  parallel::Communicator* world = nullptr;    // null: a world of one
  parallel::Watchdog* watchdog = nullptr;     // for parallel.step_timeout_s; null: no deadline
  // This process's rank among the processes of its node, and how many there are: with
  // parallel.device cuda, node-local rank r takes GPU r.
  int local_rank = 0;
  int local_size = 1;
};

struct TrainerOptions {
  // Samples of the training stream consumed before this run (resume; all dp ranks together).
  // Ignored when resume_from is set (the checkpoint's value is used).
  int64_t consumed_samples = 0;
  // A committed checkpoint step directory (<checkpoint.dir>/step_<N>) to continue from: Create
  // loads parameters, AdamW m and v and the step counter from it (whatever layout saved it;
  // launcher/checkpoint/checkpoint_reader.h reshards), positions the training stream at its
  // consumed samples, and Train continues at step N + 1. Every rank must pass the same one.
  // A model shape that differs from the checkpoint's is an error naming the tensor.
  std::string resume_from;
  // Stop request (a signal handler sets it non-zero; may be null). Checked once per step and
  // agreed over the world (all-reduce max), so every rank stops after the same step; Train then
  // saves a checkpoint (when checkpoint.dir is set) and returns normally.
  const volatile std::sig_atomic_t* stop_requested = nullptr;
  // > 0: stop after this step as if a stop had been requested (a planned preemption: the
  // schedule still spans train.steps, so a resumed run continues the same trajectory).
  int64_t stop_after_step = 0;
};

struct StepResult {
  double loss = 0.0;       // mean over the global batch's micro-batches
  double aux_loss = 0.0;   // mean over the global batch's micro-batches
  double grad_norm = 0.0;  // before clipping
  double lr = 0.0;
  double seconds = 0.0;                  // wall time of the whole step
  CommSeconds comm;                      // of which inside collectives, by group (the model's tp/ep
                                         // exchanges included)
  std::vector<LayerLoadSummary> layers;  // only on steps RunStep was asked to summarise
  std::optional<DispatchSummary> dispatch;  // the same steps, with expert parallelism only
};

struct TrainSummary {
  int64_t steps = 0;
  std::vector<double> losses;      // per step
  std::vector<double> grad_norms;  // per step
  std::optional<double> final_val_loss;
  std::string metrics_path;
  int64_t first_step = 1;           // 1 + the resumed checkpoint's step (1 for a fresh run)
  bool stopped_on_request = false;  // a signal stopped the run before train.steps
  int64_t last_saved_step = -1;     // the newest checkpoint this run committed (-1: none)
};

class Trainer {
 public:
  // Validates `config` for the world size of `parallelism`, sets the process's OpenMP thread
  // count (parallel.threads; 0 leaves OpenMP's default), builds and initialises the model
  // (train.seed; each rank draws exactly its shard), the optimizer and the data streams.
  // Collective when the data source is indexed (rank 0 builds sample indices, others wait).
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(const config::TrainConfig& config,
                                                         TrainerIo io = {},
                                                         TrainerParallelism parallelism = {},
                                                         TrainerOptions options = {});
  ~Trainer();

  // Runs train.steps optimizer steps with evaluation and logging (rank 0 opens the metrics
  // file). Collective.
  absl::StatusOr<TrainSummary> Train();

  // One optimizer step on the next global batch of the training stream; `step` (0-based) sets
  // the learning rate and names the step in errors. Logs nothing. `summarise_experts` adds the
  // expert-load summary of the global batch (one more collective, so it must be the same on
  // every rank). An error leaves the weights unchanged. Collective.
  absl::StatusOr<StepResult> RunStep(int64_t step, bool summarise_experts = true);

  // Mean loss over the train.eval_steps held-out micro-batches (micro-batch i on dp rank
  // i mod dp); no gradients are touched. Requires train.eval_interval > 0. Collective.
  // `target_counts`, when given, receives how often each token id is a scored target in those
  // micro-batches (vocab_size entries, summed over the job; ignored targets not counted), from
  // which aoetron-eval turns the loss into bits per byte.
  absl::StatusOr<double> Evaluate(std::vector<int64_t>* target_counts = nullptr);
  // logging.sample_tokens > 0: a short continuation of logging.sample_prompt, decoded to text
  // ("" when sampling is off). Collective (every rank runs the model alike).
  std::string SampleText();

  GptModel& model() { return *model_; }
  // Where the model, optimizer state and activations live (parallel.device).
  const Device& device() const { return model_->device(); }
  const config::TrainConfig& config() const { return config_; }
  const BatchLayout& batch_layout() const { return batch_; }
  int64_t tokens_per_step() const { return tokens_per_step_; }  // global batch
  double flops_per_step() const { return flops_per_step_; }     // global batch
  bool is_logging_rank() const { return world_->world_rank() == 0; }

  // ---- For checkpoints (launcher/checkpoint) ------------------------------------------------
  // Samples of the training stream consumed by all dp ranks together: save it, and pass it
  // back as TrainerOptions::consumed_samples to continue the data exactly.
  int64_t consumed_samples() const { return data_.train->consumed_samples(); }
  // Optimizer steps taken (AdamW's bias-correction counter).
  int64_t optimizer_steps() const;
  // AdamW's m and v for this rank's whole parameter replica, f32 [num_elements], laid out like
  // model().parameters().flat_values() (parameter i at its value's offset), on any device (a
  // copy is made when it is not the model's). With parallel.zero1
  // each rank holds only its shards, so this is collective over dp/edp (every rank must call);
  // otherwise local.
  void GatherOptimizerState(Tensor flat_m, Tensor flat_v);
  // The inverse, local: sets the moments and the step counter (every rank passes its replica's
  // whole m and v; a ZeRO-1 rank keeps its shards).
  void LoadOptimizerState(const Tensor& flat_m, const Tensor& flat_v, int64_t steps_taken);
  // With parallel.zero1: the moments this rank holds, per parameter piece (segment i is
  // parameter i); null otherwise (use GatherOptimizerState or the full AdamWOptimizer buffers).
  parallel::DistributedOptimizer* distributed_optimizer() { return optimizer_->zero1(); }
  // Optimizer steps already taken when Train starts (the resumed checkpoint's step, else 0).
  int64_t start_step() const { return start_step_; }

  // Collective: saves <checkpoint.dir>/step_<step> (parameters, AdamW m and v as
  // "<name>.adam_m"/".adam_v", step, consumed samples, schedule step, seed, config text and
  // layout). With checkpoint.async the write and commit run on a background thread after the
  // snapshot; Train waits for the last one before it returns. Requires checkpoint.dir.
  absl::Status SaveCheckpoint(int64_t step);

 private:
  Trainer(const config::TrainConfig& config, TrainerIo io);
  absl::Status AgreeOnLoss(int64_t step, double local_loss_sum, double local_aux_sum,
                           bool local_finite, StepResult& result);
  // Loads a checkpoint step directory into the model and optimizer (Create, resume_from).
  absl::Status RestoreFrom(const checkpoint::CheckpointReader& reader);
  // Collective: whether any rank's stop_requested is set (all-reduce max over the world).
  bool AgreeOnStop();
  // Collective over the world: max over ranks of getrusage's ru_maxrss, in bytes.
  int64_t PeakResidentBytesOfAnyRank();
  // This rank's seconds inside each group's collectives so far (differences give a step's).
  CommSeconds CollectiveSeconds();
  // Collective over the world: this step's expert all-to-all traffic, mean and max over ranks.
  DispatchSummary SummariseDispatch(const std::vector<std::vector<ExpertLoadStats>>& local);
  std::vector<LayerLoadSummary> SummariseAcrossRanks(
      const std::vector<std::vector<ExpertLoadStats>>& local);

  config::TrainConfig config_;
  TrainerIo io_;
  std::unique_ptr<std::ostream> sink_;  // discards output on ranks other than 0
  std::unique_ptr<parallel::Communicator> own_world_;
  parallel::ProcessGroups* groups_ = nullptr;
  parallel::Communicator* world_ = nullptr;
  parallel::Watchdog* watchdog_ = nullptr;
  BatchLayout batch_;
  std::unique_ptr<GptModel> model_;
  std::unique_ptr<DataParallelOptimizer> optimizer_;  // replicated or ZeRO-1 (parallel.zero1)
  LrSchedule schedule_;
  DataStreams data_;
  std::unique_ptr<ActivationArena> arena_;  // on the model's device
  // logging.sample_tokens: the dataset's tokenizer and the encoded prompt (null/empty when off).
  std::unique_ptr<data::BpeTokenizer> sample_tokenizer_;
  std::vector<int32_t> sample_prompt_;
  Tensor tokens_, targets_;  // host i32 [micro_batch_size, seq_len], refilled per micro-batch
  int64_t tokens_per_step_ = 0;
  double flops_per_step_ = 0.0;
  // Checkpoints.
  int64_t start_step_ = 0;
  std::string resumed_from_;
  const volatile std::sig_atomic_t* stop_requested_ = nullptr;
  int64_t stop_after_step_ = 0;
  std::unique_ptr<checkpoint::CheckpointManager> checkpoints_;  // null without checkpoint.dir
  Tensor checkpoint_m_, checkpoint_v_;  // host f32 [num_elements]: the replica's m and v to save
  Tensor checkpoint_values_;  // host copy of the parameters when they live on another device
};

}  // namespace aoetron
