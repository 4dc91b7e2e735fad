#include "launcher/trainer.h"

#include <omp.h>

#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "core/device_transfer.h"
#include "core/ops/elementwise.h"
#include "core/optim/grad_clip.h"
#include "core/timing.h"
#include "google/protobuf/text_format.h"
#include "launcher/checkpoint/parameter_checkpoint.h"
#include "launcher/config_validation.h"
#include "launcher/metrics_logger.h"
#include "models/flop_count.h"
#include "parallel/single_process_communicator.h"

namespace aoetron {
namespace {

// One FlatSegment per parameter, in the set's order (the flat buffers' order). gradient_sync.h
// explains what each flag decides.
std::vector<parallel::FlatSegment> FlatSegmentsOf(const ParameterSet& params,
                                                  const parallel::ProcessGrid& grid) {
  std::vector<parallel::FlatSegment> segments;
  int64_t offset = 0;
  for (const Parameter& p : params.all()) {
    parallel::FlatSegment segment;
    segment.offset = offset;
    segment.numel = p.value.numel();
    // With ep = 1 the edp group has dp's members: keep experts in dp buckets.
    segment.expert = p.sharding.is_expert() && grid.ep_size() > 1;
    // A tp-replicated parameter is the same on every tp rank: tp rank 0 counts it.
    segment.counted_in_norm = p.sharding.is_tensor_split() || grid.tp_rank() == 0;
    segment.weight_decay = p.weight_decay;
    segments.push_back(segment);
    offset += segment.numel;
  }
  return segments;
}

}  // namespace

Trainer::Trainer(const config::TrainConfig& config, TrainerIo io) : config_(config), io_(io) {}

Trainer::~Trainer() = default;

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const config::TrainConfig& config,
                                                         TrainerIo io,
                                                         TrainerParallelism parallelism,
                                                         TrainerOptions options) {
  std::unique_ptr<parallel::Communicator> own_world;
  parallel::Communicator* world = parallelism.world;
  if (world == nullptr) {
    own_world = std::make_unique<parallel::SingleProcessCommunicator>("world");
    world = own_world.get();
  }
  parallel::ProcessGroups* groups =
      parallelism.groups != nullptr ? parallelism.groups : &parallel::SingleProcessGroups();
  if (absl::Status valid = ValidateTrainConfig(config, world->size()); !valid.ok()) {
    return valid;
  }
  if (absl::Status usable =
          ValidateDevice(config, parallelism.local_size, CudaBackendBuilt(), CudaDeviceCount());
      !usable.ok()) {
    return usable;
  }
  const Device device = DeviceFromConfig(config, parallelism.local_rank);
  if (device.is_cuda()) SetCudaDevice(device.index);
  const parallel::ProcessGrid& grid = groups->grid();
  if (grid.world_size() != world->size() || grid.tp_size() != config.parallel().tp() ||
      grid.ep_size() != config.parallel().ep()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the process groups (%s) do not match parallel.tp=%d, parallel.ep=%d and the world of %d",
        grid.DebugString(), config.parallel().tp(), config.parallel().ep(), world->size()));
  }
  if (config.parallel().threads() > 0) {
    omp_set_num_threads(static_cast<int>(config.parallel().threads()));
  }
  std::unique_ptr<Trainer> trainer(new Trainer(config, io));
  trainer->own_world_ = std::move(own_world);
  trainer->world_ = world;
  trainer->groups_ = groups;
  trainer->watchdog_ = parallelism.watchdog;
  if (world->world_rank() != 0) {
    // Only global rank 0 speaks; the others compute the same numbers silently.
    trainer->sink_ = std::make_unique<std::ostream>(nullptr);
    trainer->io_.out = trainer->sink_.get();
    trainer->io_.err = trainer->sink_.get();
  }
  const BatchLayout batch = ResolveBatchLayout(config, grid.dp_size());
  trainer->batch_ = batch;
  const int64_t step_samples = batch.micro_batch_size * batch.dp;

  // Resume: the checkpoint decides the data position (and, below, the weights and moments).
  std::optional<checkpoint::CheckpointReader> resume_reader;
  int64_t consumed_samples = options.consumed_samples;
  if (!options.resume_from.empty()) {
    absl::StatusOr<checkpoint::CheckpointReader> opened =
        checkpoint::CheckpointReader::Open(options.resume_from);
    if (!opened.ok()) {
      return absl::Status(opened.status().code(),
                          absl::StrCat("resuming: ", opened.status().message()));
    }
    resume_reader.emplace(*std::move(opened));
    consumed_samples = resume_reader->manifest().state().consumed_samples();
  }
  if (consumed_samples < 0 || consumed_samples % step_samples != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "consumed samples %d must be a non-negative multiple of train.micro_batch_size (%d) × "
        "the data-parallel size (%d)",
        consumed_samples, batch.micro_batch_size, batch.dp));
  }
  trainer->stop_requested_ = options.stop_requested;
  trainer->stop_after_step_ = options.stop_after_step;

  DataParallelPosition position;
  position.dp_rank = grid.dp_rank();
  position.dp_size = grid.dp_size();
  position.build_indices = world->world_rank() == 0;
  position.consumed_samples = consumed_samples;
  absl::StatusOr<DataStreams> data = OpenDataStreams(config, position);
  if (!data.ok()) return data.status();
  trainer->data_ = *std::move(data);

  const ModelConfig model_config = ModelConfigFromConfig(config);
  trainer->model_ =
      std::make_unique<GptModel>(model_config, *groups, device, ComputeDTypeFromConfig(config));
  trainer->arena_ = std::make_unique<ActivationArena>(device);
  ParameterSet& params = trainer->model_->parameters();
  params.Initialize(config.train().seed());
  const int64_t bucket_bytes =
      std::max<int64_t>(4, std::llround(config.parallel().grad_bucket_mb() * (1 << 20)));
  trainer->optimizer_ =
      MakeDataParallelOptimizer(config.parallel().zero1(), params, FlatSegmentsOf(params, grid),
                                *groups, bucket_bytes, AdamWHyperParamsFromConfig(config));
  trainer->schedule_ = LrScheduleFromConfig(config);

  const int64_t seq = config.model().seq_len();
  trainer->tokens_ = Tensor::Empty({batch.micro_batch_size, seq}, DType::kI32);
  trainer->targets_ = Tensor::Empty({batch.micro_batch_size, seq}, DType::kI32);
  trainer->tokens_per_step_ = batch.global_batch_size * seq;
  trainer->flops_per_step_ = TrainingFlopsPerStep(model_config, trainer->tokens_per_step_);

  // Checkpoints: the moments' staging buffers, the manager (collective), then the resume.
  if (!config.checkpoint().dir().empty() || resume_reader.has_value()) {
    trainer->checkpoint_m_ = Tensor::Zeros({params.num_elements()}, DType::kF32);
    trainer->checkpoint_v_ = Tensor::Zeros({params.num_elements()}, DType::kF32);
    if (!device.is_cpu()) {
      trainer->checkpoint_values_ = Tensor::Zeros({params.num_elements()}, params.master_dtype());
    }
  }
  if (!config.checkpoint().dir().empty()) {
    checkpoint::CheckpointManagerOptions manager_options;
    manager_options.root = config.checkpoint().dir();
    manager_options.retention.keep_last = static_cast<int>(config.checkpoint().keep_last());
    manager_options.retention.keep_every = static_cast<int>(config.checkpoint().keep_every());
    manager_options.async = config.checkpoint().async();
    // Not SCHED_IDLE. Measured on 2 cores, tiny AoE, dp2 ZeRO-1 under mpirun -np 2, 30 steps
    // saving every 5: 46 s with SCHED_IDLE, 1.1 s without, 1.0 s with synchronous saves. The
    // likely cause (not proven): the idle-priority thread holds MPI's locks in its collectives
    // and the training thread's MPI calls wait for a thread that gets no CPU.
    manager_options.background_priority_idle = false;
    absl::StatusOr<std::unique_ptr<checkpoint::CheckpointManager>> manager =
        checkpoint::CheckpointManager::Create(manager_options, *world);
    if (!manager.ok()) return manager.status();
    trainer->checkpoints_ = *std::move(manager);
  }
  if (resume_reader.has_value()) {
    if (absl::Status restored = trainer->RestoreFrom(*resume_reader); !restored.ok()) {
      return absl::Status(restored.code(), absl::StrCat("resuming: ", restored.message()));
    }
  }
  return trainer;
}

// Resume: every rank reads its own boxes of the parameters and the whole replica's m and v
// (ParameterReadRequests: the reader assembles them from whatever boxes the saving layout wrote,
// and refuses a global shape that differs, naming the tensor); LoadOptimizerState keeps what
// this rank's optimizer holds (its ZeRO-1 shards, or everything). All or nothing: Read stages
// and verifies every byte before it writes a destination.
absl::Status Trainer::RestoreFrom(const checkpoint::CheckpointReader& reader) {
  const checkpoint::pb::TrainingState& state = reader.manifest().state();
  ParameterSet& params = model_->parameters();
  const std::vector<checkpoint::ShadowState> shadows = {{".adam_m", checkpoint_m_},
                                                        {".adam_v", checkpoint_v_}};
  std::vector<checkpoint::ReadRequest> requests =
      checkpoint::ParameterReadRequests(params, shadows, checkpoint_values_);
  if (absl::Status read = reader.Read(requests); !read.ok()) return read;
  if (checkpoint_values_.defined()) CopyAcrossDevices(checkpoint_values_, params.flat_masters());
  params.RefreshComputeCopy();
  LoadOptimizerState(checkpoint_m_, checkpoint_v_, state.step());
  start_step_ = state.step();
  resumed_from_ = reader.directory();
  if (state.seed() != config_.train().seed()) {
    *io_.err << absl::StrFormat(
        "note: the checkpoint was trained with train.seed=%d, this run sets %d; the seed only "
        "initialises, so the loaded weights decide\n",
        state.seed(), config_.train().seed());
  }
  return absl::OkStatus();
}

absl::Status Trainer::SaveCheckpoint(int64_t step) {
  AOETRON_CHECK(checkpoints_ != nullptr) << "SaveCheckpoint without checkpoint.dir";
  // Whole-replica moments (collective with ZeRO-1: an all-gather over dp/edp). Saving the
  // shards themselves (FlatShardSaveItems) would skip that all-gather; see docs/checkpoint.md.
  GatherOptimizerState(checkpoint_m_, checkpoint_v_);
  ParameterSet& params = model_->parameters();
  const parallel::ProcessGrid& grid = groups_->grid();
  if (checkpoint_values_.defined()) CopyAcrossDevices(params.flat_masters(), checkpoint_values_);
  const std::vector<checkpoint::SaveItem> items = checkpoint::ParameterSaveItems(
      params, grid, {{".adam_m", checkpoint_m_}, {".adam_v", checkpoint_v_}}, checkpoint_values_);
  checkpoint::pb::TrainingState state;
  state.set_step(step);
  state.set_consumed_samples(consumed_samples());
  state.set_schedule_step(step);
  state.set_seed(config_.train().seed());
  state.set_data_position(consumed_samples() / batch_.micro_batch_size);
  std::string text;
  google::protobuf::TextFormat::PrintToString(config_, &text);
  state.set_config_text(text);
  checkpoint::pb::Layout* layout = state.mutable_layout();
  layout->set_world_size(grid.world_size());
  layout->set_tp(grid.tp_size());
  layout->set_ep(grid.ep_size());
  layout->set_dp(grid.dp_size());
  layout->set_zero1(config_.parallel().zero1());
  state.mutable_counters()->insert({"optimizer_steps", optimizer_steps()});
  return checkpoints_->Save(step, items, state);
}

CommSeconds Trainer::CollectiveSeconds() {
  using parallel::GroupKind;
  // A group's device and host communicators are one on a CPU run; on a GPU run both count.
  auto seconds = [this](GroupKind kind) {
    parallel::Communicator& device = groups_->Get(kind);
    parallel::Communicator& host = groups_->Host(kind);
    return device.seconds_in_collectives() +
           (&host != &device ? host.seconds_in_collectives() : 0.0);
  };
  return {seconds(GroupKind::kTensorParallel), seconds(GroupKind::kExpertParallel),
          seconds(GroupKind::kDataParallel), seconds(GroupKind::kExpertDataParallel),
          world_->seconds_in_collectives()};
}

bool Trainer::AgreeOnStop() {
  Tensor flag = Tensor::Zeros({1}, DType::kF64);
  flag.data<double>()[0] = (stop_requested_ != nullptr && *stop_requested_ != 0) ? 1.0 : 0.0;
  if (world_->size() > 1) world_->AllReduce(flag, parallel::ReduceOp::kMax);
  return flag.data<double>()[0] != 0.0;
}

int64_t Trainer::optimizer_steps() const { return optimizer_->steps_taken(); }

void Trainer::GatherOptimizerState(Tensor flat_m, Tensor flat_v) {
  optimizer_->GatherState(flat_m, flat_v);
}

void Trainer::LoadOptimizerState(const Tensor& flat_m, const Tensor& flat_v, int64_t steps_taken) {
  optimizer_->LoadState(flat_m, flat_v, steps_taken);
}

// Step 3 of the loop: every rank learns the global batch's loss and whether any rank saw a
// non-finite loss or gradient, in one world all-reduce of [Σ loss, Σ aux, flag of rank 0, ...,
// flag of rank W−1] (flag 1: loss not finite, 2: loss finite but gradient not finite). Only tp
// rank 0 adds its losses (a tp group computes the same loss on every member). Checking the
// gradient before the sync is what lets the message name the rank: after the sum every rank's
// gradient would be NaN.
absl::Status Trainer::AgreeOnLoss(int64_t step, double local_loss_sum, double local_aux_sum,
                                  bool local_finite, StepResult& result) {
  const int world = world_->size();
  const bool counts = groups_->grid().tp_rank() == 0;
  // Checked before the sum (DataParallelOptimizer::LocalGradientsFinite). Alone, the norm check
  // suffices.
  const bool grads_finite = !local_finite || world == 1 || optimizer_->LocalGradientsFinite();
  Tensor reduced = Tensor::Zeros({2 + world}, DType::kF64);
  double* v = reduced.data<double>();
  v[0] = counts ? local_loss_sum : 0.0;
  v[1] = counts ? local_aux_sum : 0.0;
  v[2 + world_->world_rank()] = !local_finite ? 1.0 : (grads_finite ? 0.0 : 2.0);
  if (world > 1) world_->AllReduce(reduced, parallel::ReduceOp::kSum);
  const double micro_batches = static_cast<double>(batch_.micro_batches_per_step());
  result.loss = v[0] / micro_batches;
  result.aux_loss = v[1] / micro_batches;
  std::vector<int> bad_loss, bad_grad;
  for (int r = 0; r < world; ++r) {
    if (v[2 + r] == 1.0) bad_loss.push_back(r);
    if (v[2 + r] == 2.0) bad_grad.push_back(r);
  }
  auto ranks = [](const std::vector<int>& list) {
    return absl::StrCat(list.size() > 1 ? "ranks " : "rank ", absl::StrJoin(list, ", "));
  };
  if (!bad_loss.empty()) {
    return absl::InternalError(absl::StrFormat(
        "step %d: the loss is not finite on %s (mean loss %g, aux_loss %g); stopping (too large "
        "an optimizer.lr or model.init_std is the usual cause)",
        step + 1, ranks(bad_loss), result.loss, result.aux_loss));
  }
  if (!bad_grad.empty()) {
    return absl::InternalError(absl::StrFormat(
        "step %d: the gradient is not finite on %s (its loss is finite; mean loss %g); stopping "
        "before the optimizer step (too large an optimizer.lr or model.init_std is the usual "
        "cause)",
        step + 1, ranks(bad_grad), result.loss));
  }
  return absl::OkStatus();
}

// The expert-load summary of the whole global batch: per layer, the token counts per expert
// and the sums of Ent_conf and aux loss over micro-batches are summed over dp, then summarised
// as one micro-batch (SummariseExpertLoad).
std::vector<LayerLoadSummary> Trainer::SummariseAcrossRanks(
    const std::vector<std::vector<ExpertLoadStats>>& local) {
  if (local.empty()) return {};
  const size_t layers = local.front().size();
  if (layers == 0) return {};
  const size_t experts = local.front().front().tokens_per_expert.size();
  const size_t width = experts + 2;
  Tensor reduced = Tensor::Zeros({static_cast<int64_t>(layers * width)}, DType::kF64);
  double* v = reduced.data<double>();
  for (const std::vector<ExpertLoadStats>& micro_batch : local) {
    for (size_t l = 0; l < layers; ++l) {
      const ExpertLoadStats& stats = micro_batch[l];
      for (size_t e = 0; e < experts; ++e) {
        v[l * width + e] += static_cast<double>(stats.tokens_per_expert[e]);
      }
      v[l * width + experts] += stats.entropy_confidence;
      v[l * width + experts + 1] += stats.aux_loss;
    }
  }
  if (groups_->grid().dp_size() > 1) {
    groups_->Host(parallel::GroupKind::kDataParallel).AllReduce(reduced, parallel::ReduceOp::kSum);
  }
  const double micro_batches = static_cast<double>(batch_.micro_batches_per_step());
  std::vector<ExpertLoadStats> merged(layers);
  for (size_t l = 0; l < layers; ++l) {
    merged[l].tokens_per_expert.resize(experts);
    for (size_t e = 0; e < experts; ++e) {
      merged[l].tokens_per_expert[e] = std::llround(v[l * width + e]);
    }
    merged[l].entropy_confidence = v[l * width + experts] / micro_batches;
    merged[l].aux_loss = v[l * width + experts + 1] / micro_batches;
    // Used only when no counts are reported: the last micro-batch's own figures.
    merged[l].load_fraction_min = local.back()[l].load_fraction_min;
    merged[l].load_fraction_max = local.back()[l].load_fraction_max;
    merged[l].entropy_load = local.back()[l].entropy_load;
  }
  return SummariseExpertLoad({merged}, groups_->grid().ep_size());
}

DispatchSummary Trainer::SummariseDispatch(const std::vector<std::vector<ExpertLoadStats>>& local) {
  // [payload, minimum, exchange] summed over the world, then exchange's max.
  Tensor sums = Tensor::Zeros({3}, DType::kF64);
  double* v = sums.data<double>();
  for (const std::vector<ExpertLoadStats>& micro_batch : local) {
    for (const ExpertLoadStats& layer : micro_batch) {
      v[0] += static_cast<double>(layer.dispatch.forward_payload_bytes);
      v[1] += static_cast<double>(layer.dispatch.minimum_payload_bytes);
      v[2] += static_cast<double>(layer.dispatch.total_bytes());
    }
  }
  Tensor busiest = Tensor::Zeros({1}, DType::kF64);
  busiest.data<double>()[0] = v[2];
  world_->AllReduce(sums, parallel::ReduceOp::kSum);
  world_->AllReduce(busiest, parallel::ReduceOp::kMax);
  const double ranks = static_cast<double>(world_->size());
  DispatchSummary summary;
  summary.payload_bytes = v[0] / ranks;
  summary.minimum_payload_bytes = v[1] / ranks;
  summary.exchange_bytes = v[2] / ranks;
  summary.exchange_bytes_max = busiest.data<double>()[0];
  return summary;
}

absl::StatusOr<StepResult> Trainer::RunStep(int64_t step, bool summarise_experts) {
  std::optional<parallel::ScopedDeadline> deadline;
  if (watchdog_ != nullptr && config_.parallel().step_timeout_s() > 0) {
    deadline.emplace(watchdog_, absl::StrCat("training step ", step + 1),
                     absl::Seconds(config_.parallel().step_timeout_s()));
  }
  const auto start = SteadyClock::now();
  const CommSeconds comm_at_start = CollectiveSeconds();
  const int64_t micro_batches = batch_.micro_batches_per_rank;
  // Each micro-batch's mean loss counts 1/(M·dp) of the global batch's mean.
  const double loss_scale = 1.0 / static_cast<double>(batch_.micro_batches_per_step());
  StepResult result;
  std::vector<std::vector<ExpertLoadStats>> layer_stats;

  // 1.–2. Forward and backward over this rank's micro-batches. The last micro-batch's backward
  // may start the gradient reduction of each bucket as soon as its layers are done
  // (DataParallelOptimizer::LastMicroBatchHook: the replicated optimizer's overlap).
  model_->parameters().ZeroGrads();
  optimizer_->BeginStep(/*check_finite=*/world_->size() > 1);
  double loss_sum = 0.0, aux_sum = 0.0;
  bool finite = true;
  for (int64_t m = 0; m < micro_batches; ++m) {
    if (absl::Status next = data_.train->Next(tokens_, targets_); !next.ok()) {
      return absl::Status(next.code(), absl::StrFormat("step %d: reading the training data: %s",
                                                       step + 1, next.message()));
    }
    GradientsReadyHook gradients_ready;
    if (m + 1 == micro_batches) gradients_ready = optimizer_->LastMicroBatchHook();
    StepOutputs out =
        model_->ForwardBackward(tokens_, targets_, loss_scale, *arena_, gradients_ready);
    finite = finite && std::isfinite(out.loss) && std::isfinite(out.aux_loss);
    loss_sum += out.loss;
    aux_sum += out.aux_loss;
    if (!out.layer_stats.empty()) layer_stats.push_back(std::move(out.layer_stats));
  }
  optimizer_->FinishBackward();
  // 3. The loss of the global batch, and a stop on every rank if any saw a non-finite one.
  if (absl::Status agreed = AgreeOnLoss(step, loss_sum, aux_sum, finite, result); !agreed.ok()) {
    return agreed;
  }

  // 4.–5. Sum the gradients over the replicas; the global norm counts each element once.
  optimizer_->ReduceGradients();
  Tensor squares = Tensor::Zeros({1}, DType::kF64);
  squares.data<double>()[0] = optimizer_->LocalSquaredNorm();
  if (world_->size() > 1) world_->AllReduce(squares, parallel::ReduceOp::kSum);
  result.grad_norm = std::sqrt(squares.data<double>()[0]);
  if (!std::isfinite(result.grad_norm)) {
    return absl::InternalError(absl::StrFormat(
        "step %d: the gradient norm is not finite (%g, loss %g); stopping before the optimizer "
        "step (too large an optimizer.lr or model.init_std is the usual cause)",
        step + 1, result.grad_norm, result.loss));
  }

  // 6. Clip.
  const double clip = ClipFactor(result.grad_norm, config_.optimizer().grad_clip());
  if (clip != 1.0) optimizer_->ScaleGradients(clip);

  // 7. AdamW on the masters (and the bf16 compute copy refreshed).
  result.lr = schedule_.At(step);
  optimizer_->Step(result.lr);
  if (summarise_experts) {
    result.layers = SummariseAcrossRanks(layer_stats);
    if (groups_->grid().ep_size() > 1) result.dispatch = SummariseDispatch(layer_stats);
  }
  result.comm = CollectiveSeconds() - comm_at_start;
  result.seconds = SecondsSince(start);
  return result;
}

absl::StatusOr<double> Trainer::Evaluate() {
  AOETRON_CHECK(data_.eval != nullptr) << "Evaluate: train.eval_interval is 0, no held-out data";
  const int64_t batches = config_.train().eval_steps();
  const int64_t dp = batch_.dp, dp_rank = groups_->grid().dp_rank();
  // Every rank runs the same number of forwards (the model may communicate inside them); a
  // rank past the last held-out micro-batch repeats one and does not count it.
  const int64_t rounds = (batches + dp - 1) / dp;
  double sum = 0.0;
  for (int64_t k = 0; k < rounds; ++k) {
    const int64_t index = k * dp + dp_rank;
    const bool counted = index < batches;
    if (absl::Status fill = data_.eval->Fill(counted ? index : index % batches, tokens_, targets_);
        !fill.ok()) {
      return absl::Status(fill.code(),
                          absl::StrCat("reading the evaluation data: ", fill.message()));
    }
    const double loss = model_->Forward(tokens_, targets_, *arena_).loss;
    if (counted) sum += loss;
  }
  Tensor reduced = Tensor::Zeros({1}, DType::kF64);
  reduced.data<double>()[0] = groups_->grid().tp_rank() == 0 ? sum : 0.0;
  if (world_->size() > 1) world_->AllReduce(reduced, parallel::ReduceOp::kSum);
  return reduced.data<double>()[0] / static_cast<double>(batches);
}

absl::StatusOr<TrainSummary> Trainer::Train() {
  const config::TrainSection& train = config_.train();
  const std::string metrics_path = ResolveMetricsFilePath(config_);
  std::unique_ptr<MetricsLogger> logger;
  if (is_logging_rank()) {
    absl::StatusOr<std::unique_ptr<MetricsLogger>> opened =
        MetricsLogger::Open(metrics_path, io_.out,
                            WantsHumanProgress(config_.logging().progress(), io_.out_is_terminal));
    if (!opened.ok()) return opened.status();
    logger = *std::move(opened);
  }
  const ParameterSet& params = model_->parameters();
  const parallel::ProcessGrid& grid = groups_->grid();
  *io_.err << absl::StrFormat(
      "aoetron-train: %s model, %d parameters per rank (%d active matmul), %.3g GFLOP per step "
      "of %d tokens (global batch %d = micro-batch %d × %d per rank × dp %d), %d ranks (tp %d, "
      "ep %d, dp %d%s), %d OpenMP threads per rank; metrics to %s\n",
      FfnKindName(model_->config().ffn), params.num_elements(),
      ActiveMatmulParameters(model_->config()), flops_per_step_ / 1e9, tokens_per_step_,
      batch_.global_batch_size, batch_.micro_batch_size, batch_.micro_batches_per_rank, batch_.dp,
      grid.world_size(), grid.tp_size(), grid.ep_size(), grid.dp_size(),
      config_.parallel().zero1() ? ", ZeRO-1" : "", omp_get_max_threads(), metrics_path);

  TrainSummary summary;
  summary.metrics_path = metrics_path;
  summary.first_step = start_step_ + 1;
  if (!resumed_from_.empty()) {
    *io_.err << absl::StrFormat(
        "aoetron-train: resumed from step %d (%s, %d samples consumed); continuing at step %d\n",
        start_step_, resumed_from_, consumed_samples(), start_step_ + 1);
  }
  if (start_step_ >= train.steps()) {
    *io_.err << absl::StrFormat(
        "aoetron-train: the checkpoint is at step %d and train.steps is %d: nothing to do\n",
        start_step_, train.steps());
    return summary;
  }
  double window_seconds = 0.0;
  CommSeconds window_comm;
  int64_t window_steps = 0;
  for (int64_t s = start_step_; s < train.steps(); ++s) {
    const int64_t step = s + 1;
    const bool last = step == train.steps();
    const bool evaluates = train.eval_interval() > 0 && (step % train.eval_interval() == 0 || last);
    const bool logged = step == 1 || step % config_.logging().interval() == 0 || last || evaluates;
    absl::StatusOr<StepResult> result = RunStep(s, /*summarise_experts=*/logged);
    if (!result.ok()) return result.status();
    summary.steps = step;
    summary.losses.push_back(result->loss);
    summary.grad_norms.push_back(result->grad_norm);
    window_seconds += result->seconds;
    window_comm += result->comm;
    ++window_steps;

    std::optional<double> val_loss;
    if (evaluates) {
      absl::StatusOr<double> evaluated = Evaluate();
      if (!evaluated.ok()) {
        return absl::Status(evaluated.status().code(),
                            absl::StrCat("step ", step, ": ", evaluated.status().message()));
      }
      val_loss = *evaluated;
      summary.final_val_loss = val_loss;
    }
    // A stop request on any rank ends the run on every rank after this same step.
    const bool stop =
        ((stop_requested_ != nullptr && AgreeOnStop()) || step == stop_after_step_) && !last;
    const int64_t interval = config_.checkpoint().interval();
    if (checkpoints_ != nullptr && (last || stop || (interval > 0 && step % interval == 0))) {
      if (absl::Status saved = SaveCheckpoint(step); !saved.ok()) {
        return absl::Status(
            saved.code(), absl::StrCat("step ", step, ": saving a checkpoint: ", saved.message()));
      }
      summary.last_saved_step = step;
    }
    if (stop) {
      summary.stopped_on_request = true;
      if (!logged) break;
    }
    if (!logged) continue;
    StepMetrics metrics;
    metrics.step = step;
    metrics.total_steps = train.steps();
    metrics.loss = result->loss;
    metrics.aux_loss = result->aux_loss;
    metrics.grad_norm = result->grad_norm;
    metrics.lr = result->lr;
    metrics.tokens = step * tokens_per_step_;
    metrics.step_seconds = window_seconds / static_cast<double>(window_steps);
    metrics.comm = window_comm / static_cast<double>(window_steps);
    metrics.tokens_per_s = static_cast<double>(tokens_per_step_) / metrics.step_seconds;
    metrics.model_flops_per_s = flops_per_step_ / metrics.step_seconds;
    metrics.val_loss = val_loss;
    metrics.layers = std::move(result->layers);
    metrics.dispatch = result->dispatch;
    if (logger != nullptr) {
      if (absl::Status logged_ok = logger->Log(metrics); !logged_ok.ok()) return logged_ok;
    }
    window_seconds = 0.0;
    window_comm = {};
    window_steps = 0;
    if (stop) break;
  }
  if (checkpoints_ != nullptr) {
    if (absl::Status waited = checkpoints_->Wait(); !waited.ok()) {
      return absl::Status(waited.code(),
                          absl::StrCat("saving the last checkpoint: ", waited.message()));
    }
  }
  if (summary.stopped_on_request) {
    *io_.err << absl::StrFormat(
        "aoetron-train: stopped on request after step %d%s\n", summary.steps,
        summary.last_saved_step == summary.steps
            ? absl::StrFormat("; checkpoint %s/step_%d saved (resume with --resume auto)",
                              config_.checkpoint().dir(), summary.steps)
            : std::string("; no checkpoint (checkpoint.dir is empty)"));
  }
  *io_.err << absl::StrFormat("aoetron-train: done, %d steps, final loss %.4f%s\n", summary.steps,
                              summary.losses.back(),
                              summary.final_val_loss.has_value()
                                  ? absl::StrFormat(", val_loss %.4f", *summary.final_val_loss)
                                  : std::string());
  return summary;
}

}  // namespace aoetron
