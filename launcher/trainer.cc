// Trainer, part 1 of 5: set-up (Create). The others, by job: trainer_state.cc (what checkpoints
// save and restore), trainer_step.cc (one optimizer step, evaluation), trainer_loop.cc (Train),
// trainer_summaries.cc (the cross-rank agreements and summaries).
#include "launcher/trainer.h"

#include <omp.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/device_transfer.h"
#include "launcher/config_validation.h"
#include "launcher/dataset_tokenizer.h"
#include "launcher/indexed_source.h"
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
    const checkpoint::pb::TrainingState& state = resume_reader->manifest().state();
    if (absl::Status order = CheckResumedSampleOrder(
            config, {state.counters().begin(), state.counters().end()}, options.resume_from);
        !order.ok()) {
      return order;
    }
    consumed_samples = state.consumed_samples();
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

  if (config.logging().sample_tokens() > 0) {
    absl::StatusOr<std::unique_ptr<data::BpeTokenizer>> tokenizer = DatasetTokenizer(config);
    if (!tokenizer.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("logging.sample_tokens needs the dataset's tokenizer, but ",
                       tokenizer.status().message()));
    }
    trainer->sample_prompt_ = config.logging().sample_prompt().empty()
                                  ? std::vector<int32_t>{(*tokenizer)->end_of_text_id()}
                                  : (*tokenizer)->Encode(config.logging().sample_prompt());
    const int64_t length = static_cast<int64_t>(trainer->sample_prompt_.size());
    if (length < 1 || length >= config.model().seq_len() || trainer->sample_prompt_[0] < 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "logging.sample_prompt must encode to 1 to model.seq_len − 1 tokens (got %d; an empty "
          "prompt needs a tokenizer with an end-of-text token)",
          length));
    }
    trainer->sample_tokenizer_ = *std::move(tokenizer);
  }
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

}  // namespace aoetron
