#include "launcher/config_conversion.h"

#include <algorithm>

namespace aoetron {

ModelConfig ModelConfigFromConfig(const config::TrainConfig& config) {
  const config::ModelSection& m = config.model();
  ModelConfig model;
  model.vocab_size = m.vocab_size();
  model.d_model = m.d_model();
  model.n_layers = m.n_layers();
  model.n_heads = m.n_heads();
  model.seq_len = m.seq_len();
  model.d_ffn = m.d_ffn();
  switch (m.ffn()) {
    case config::ModelSection::dense:
      model.ffn = FfnKind::kDense;
      break;
    case config::ModelSection::moe:
      model.ffn = FfnKind::kRouterMoe;
      break;
    case config::ModelSection::aoe:
      model.ffn = FfnKind::kAoe;
      break;
  }
  // Granularity G is applied here, once: the layers see n·G experts of width d_ffn/G, k·G chosen.
  const int64_t granularity = std::max<int64_t>(1, m.granularity());
  model.n_experts = m.n_experts() * granularity;
  model.top_k = m.top_k() * granularity;
  model.d_expert = m.d_expert() > 0 ? m.d_expert() : m.d_ffn() / granularity;
  model.n_shared_experts = m.n_shared_experts();
  model.d_shared = m.d_shared();
  model.router_score = m.router_score() == config::ModelSection::sigmoid ? RouterScore::kSigmoid
                                                                         : RouterScore::kSoftmax;
  model.z_loss_coeff = m.z_loss_coeff();
  model.expert_bias_rate = m.expert_bias_rate();
  model.d_low = m.d_low();
  model.d_wide = m.d_wide();
  model.aoe_gate = m.aoe_gate() == config::ModelSection::release ? AoeGateVariant::kRelease
                                                                 : AoeGateVariant::kPaper;
  model.aoe_memory = m.aoe_memory() == config::ModelSection::blockwise ? AoeMemory::kBlockwise
                                                                       : AoeMemory::kKeepAll;
  model.aoe_score_block = m.aoe_score_block();
  model.aux_loss_coeff = m.aux_loss_coeff();
  model.rope_theta = m.rope_theta();
  model.norm_eps = m.norm_eps();
  model.init_std = m.init_std();
  return model;
}

DType ComputeDTypeFromConfig(const config::TrainConfig& config) {
  return config.model().precision() == config::ModelSection::bf16 ? DType::kBF16 : DType::kF32;
}

AdamWHyperParams AdamWHyperParamsFromConfig(const config::TrainConfig& config) {
  AdamWHyperParams hp;
  hp.beta1 = static_cast<float>(config.optimizer().beta1());
  hp.beta2 = static_cast<float>(config.optimizer().beta2());
  hp.eps = static_cast<float>(config.optimizer().eps());
  hp.weight_decay = static_cast<float>(config.optimizer().weight_decay());
  return hp;
}

LrSchedule LrScheduleFromConfig(const config::TrainConfig& config) {
  LrSchedule schedule;
  switch (config.schedule().decay()) {
    case config::ScheduleSection::constant:
      schedule.decay = LrDecay::kConstant;
      break;
    case config::ScheduleSection::cosine:
      schedule.decay = LrDecay::kCosine;
      break;
    case config::ScheduleSection::linear:
      schedule.decay = LrDecay::kLinear;
      break;
    case config::ScheduleSection::wsd:
      schedule.decay = LrDecay::kWsd;
      break;
  }
  schedule.max_lr = config.optimizer().lr();
  schedule.min_lr = config.optimizer().min_lr();
  schedule.warmup_steps = config.schedule().warmup_steps();
  schedule.total_steps = config.train().steps();
  schedule.wsd_decay_fraction = config.schedule().wsd_decay_fraction();
  return schedule;
}

BatchLayout ResolveBatchLayout(const config::TrainConfig& config, int64_t dp) {
  BatchLayout layout;
  layout.micro_batch_size = config.train().micro_batch_size();
  layout.dp = dp;
  if (config.train().global_batch_size() > 0) {
    layout.global_batch_size = config.train().global_batch_size();
    layout.micro_batches_per_rank = layout.global_batch_size / (layout.micro_batch_size * dp);
  } else {
    layout.micro_batches_per_rank = config.train().grad_accum_steps();
    layout.global_batch_size = layout.micro_batch_size * layout.micro_batches_per_rank * dp;
  }
  return layout;
}

}  // namespace aoetron
