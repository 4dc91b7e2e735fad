// Trainer: the training state checkpoints save and restore (parameters, AdamW moments, step,
// data position), and the optimizer state behind it.
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
#include "launcher/indexed_source.h"
#include "launcher/metrics_logger.h"
#include "launcher/trainer.h"

namespace aoetron {

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
  state.mutable_counters()->insert(
      {"data_sample_order", data::SampleOrderVersion(SampleOrderFromConfig(config_))});
  return checkpoints_->Save(step, items, state);
}

int64_t Trainer::optimizer_steps() const { return optimizer_->steps_taken(); }

void Trainer::GatherOptimizerState(Tensor flat_m, Tensor flat_v) {
  optimizer_->GatherState(flat_m, flat_v);
}

void Trainer::LoadOptimizerState(const Tensor& flat_m, const Tensor& flat_v, int64_t steps_taken) {
  optimizer_->LoadState(flat_m, flat_v, steps_taken);
}

}  // namespace aoetron
