#include "launcher/config_validation.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "launcher/config_conversion.h"
#include "launcher/indexed_source.h"
#include "models/model_config.h"

namespace aoetron {
namespace {

absl::Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

absl::Status AtLeast(const char* field, int64_t value, int64_t minimum) {
  if (value >= minimum) return absl::OkStatus();
  return Invalid(absl::StrFormat("%s must be ≥ %d (got %d)", field, minimum, value));
}

// Written as !(value > 0) so that NaN fails too.
absl::Status Positive(const char* field, double value) {
  if (std::isfinite(value) && value > 0) return absl::OkStatus();
  return Invalid(absl::StrFormat("%s must be a finite number > 0 (got %g)", field, value));
}

absl::Status NonNegative(const char* field, double value) {
  if (std::isfinite(value) && value >= 0) return absl::OkStatus();
  return Invalid(absl::StrFormat("%s must be a finite number ≥ 0 (got %g)", field, value));
}

// low ≤ value < high (half_open) or low ≤ value ≤ high.
absl::Status InRange(const char* field, double value, double low, double high, bool half_open) {
  const bool ok = value >= low && (half_open ? value < high : value <= high);
  if (ok) return absl::OkStatus();
  return Invalid(absl::StrFormat("%s must be in [%g, %g%s (got %g)", field, low, high,
                                 half_open ? ")" : "]", value));
}

#define RETURN_IF_ERROR(expr)                           \
  do {                                                  \
    if (absl::Status status_ = (expr); !status_.ok()) { \
      return status_;                                   \
    }                                                   \
  } while (false)

// The largest divisor of `value` not above `limit` (1 at least).
int64_t DivisorAtMost(int64_t value, int64_t limit) {
  for (int64_t g = std::min(value, limit); g > 1; --g) {
    if (value % g == 0) return g;
  }
  return 1;
}

// Granularity and d_expert, which ModelConfigFromConfig resolves away (n·G experts of width
// d_expert or d_ffn/G), so ValidateModelConfig cannot name them. The other MoE options (shared
// experts, z-loss, bias rate, router_score) are checked there, on the resolved config.
absl::Status ValidateMoeOptions(const config::ModelSection& m) {
  RETURN_IF_ERROR(AtLeast("model.granularity", m.granularity(), 1));
  RETURN_IF_ERROR(AtLeast("model.d_expert", m.d_expert(), 0));
  if (m.ffn() == config::ModelSection::dense) return absl::OkStatus();
  if (m.d_expert() == 0 && m.d_ffn() % m.granularity() != 0) {
    return Invalid(absl::StrFormat(
        "model.granularity (%d) must divide model.d_ffn (%d): each fine-grained expert has width "
        "d_ffn / granularity; use model.granularity: %d, or set model.d_expert",
        m.granularity(), m.d_ffn(), DivisorAtMost(m.d_ffn(), m.granularity())));
  }
  return absl::OkStatus();
}

absl::Status ValidateModelSection(const config::ModelSection& m) {
  RETURN_IF_ERROR(AtLeast("model.vocab_size", m.vocab_size(), 1));
  if (m.vocab_size() > (int64_t{1} << 31) - 1) {
    return Invalid(absl::StrFormat("model.vocab_size (%d) must fit in int32", m.vocab_size()));
  }
  RETURN_IF_ERROR(AtLeast("model.d_model", m.d_model(), 1));
  RETURN_IF_ERROR(AtLeast("model.n_layers", m.n_layers(), 1));
  RETURN_IF_ERROR(AtLeast("model.n_heads", m.n_heads(), 1));
  RETURN_IF_ERROR(AtLeast("model.seq_len", m.seq_len(), 2));
  RETURN_IF_ERROR(AtLeast("model.d_ffn", m.d_ffn(), 1));
  if (m.d_model() % m.n_heads() != 0) {
    return Invalid(absl::StrFormat("model.d_model (%d) must be divisible by model.n_heads (%d)",
                                   m.d_model(), m.n_heads()));
  }
  const int64_t head_dim = m.d_model() / m.n_heads();
  if (head_dim % 2 != 0) {
    return Invalid(absl::StrFormat(
        "model.d_model / model.n_heads (%d / %d = %d) must be even: rotary embeddings rotate "
        "pairs of dimensions",
        m.d_model(), m.n_heads(), head_dim));
  }
  RETURN_IF_ERROR(NonNegative("model.aux_loss_coeff", m.aux_loss_coeff()));
  RETURN_IF_ERROR(Positive("model.rope_theta", m.rope_theta()));
  RETURN_IF_ERROR(Positive("model.norm_eps", m.norm_eps()));
  RETURN_IF_ERROR(Positive("model.init_std", m.init_std()));
  RETURN_IF_ERROR(ValidateMoeOptions(m));
  if (m.ffn() == config::ModelSection::dense) return absl::OkStatus();

  const std::string kind = m.ffn() == config::ModelSection::aoe ? "aoe" : "moe";
  RETURN_IF_ERROR(AtLeast("model.n_experts", m.n_experts(), 1));
  if (m.top_k() < 1) {
    return Invalid(
        absl::StrFormat("model.top_k must be ≥ 1 for model.ffn %s (got %d)", kind, m.top_k()));
  }
  if (m.top_k() > m.n_experts()) {
    if (m.granularity() > 1) {
      return Invalid(
          absl::StrFormat("model.top_k × model.granularity (%d × %d = %d experts chosen) must be ≤ "
                          "model.n_experts × model.granularity (%d); use model.top_k: %d",
                          m.top_k(), m.granularity(), m.top_k() * m.granularity(),
                          m.n_experts() * m.granularity(), m.n_experts()));
    }
    return Invalid(absl::StrFormat("model.top_k (%d) must be ≤ model.n_experts (%d)", m.top_k(),
                                   m.n_experts()));
  }
  if (m.ffn() != config::ModelSection::aoe) return absl::OkStatus();
  if (m.d_low() < 1) {
    return Invalid(
        absl::StrFormat("model.d_low must be ≥ 1 for model.ffn aoe (got %d)", m.d_low()));
  }
  if (m.d_wide() < 0) {
    return Invalid(
        absl::StrFormat("model.d_wide must be ≥ 0, 0 meaning derived (got %d)", m.d_wide()));
  }
  if (m.aoe_score_block() < 0) {
    return Invalid(absl::StrFormat(
        "model.aoe_score_block must be ≥ 0 (got %d); 0 picks a block automatically (%d experts "
        "for model.d_low %d)",
        m.aoe_score_block(), AoeScoreBlock(m.n_experts(), m.d_low(), 0), m.d_low()));
  }
  // A derived d_wide below 1 is ValidateModelConfig's to report (it sees the resolved widths).
  return absl::OkStatus();
}

absl::Status ValidateOptimizerSection(const config::OptimizerSection& o) {
  RETURN_IF_ERROR(Positive("optimizer.lr", o.lr()));
  RETURN_IF_ERROR(NonNegative("optimizer.min_lr", o.min_lr()));
  if (o.min_lr() > o.lr()) {
    return Invalid(
        absl::StrFormat("optimizer.min_lr (%g) must be ≤ optimizer.lr (%g)", o.min_lr(), o.lr()));
  }
  RETURN_IF_ERROR(InRange("optimizer.beta1", o.beta1(), 0.0, 1.0, /*half_open=*/true));
  RETURN_IF_ERROR(InRange("optimizer.beta2", o.beta2(), 0.0, 1.0, /*half_open=*/true));
  RETURN_IF_ERROR(Positive("optimizer.eps", o.eps()));
  RETURN_IF_ERROR(NonNegative("optimizer.weight_decay", o.weight_decay()));
  RETURN_IF_ERROR(NonNegative("optimizer.grad_clip", o.grad_clip()));
  return absl::OkStatus();
}

absl::Status ValidateTrainAndSchedule(const config::TrainConfig& c) {
  const config::TrainSection& t = c.train();
  RETURN_IF_ERROR(AtLeast("train.steps", t.steps(), 1));
  RETURN_IF_ERROR(AtLeast("train.micro_batch_size", t.micro_batch_size(), 1));
  RETURN_IF_ERROR(AtLeast("train.grad_accum_steps", t.grad_accum_steps(), 1));
  RETURN_IF_ERROR(AtLeast("train.eval_interval", t.eval_interval(), 0));
  if (t.eval_interval() > 0) RETURN_IF_ERROR(AtLeast("train.eval_steps", t.eval_steps(), 1));

  const config::ScheduleSection& s = c.schedule();
  RETURN_IF_ERROR(AtLeast("schedule.warmup_steps", s.warmup_steps(), 0));
  if (s.warmup_steps() > t.steps()) {
    return Invalid(absl::StrFormat("schedule.warmup_steps (%d) must be ≤ train.steps (%d)",
                                   s.warmup_steps(), t.steps()));
  }
  RETURN_IF_ERROR(InRange("schedule.wsd_decay_fraction", s.wsd_decay_fraction(), 0.0, 1.0, false));
  return absl::OkStatus();
}

absl::Status ValidateDataSection(const config::TrainConfig& c) {
  const config::DataSection& d = c.data();
  if (d.source() == config::DataSection::synthetic) {
    RETURN_IF_ERROR(AtLeast("data.synthetic_branching", d.synthetic_branching(), 1));
    if (d.synthetic_branching() > c.model().vocab_size()) {
      return Invalid(
          absl::StrFormat("data.synthetic_branching (%d) must be ≤ model.vocab_size (%d)",
                          d.synthetic_branching(), c.model().vocab_size()));
    }
    return absl::OkStatus();
  }
  if (d.source() == config::DataSection::indexed) {
    if (absl::StatusOr<std::vector<data::WeightedDataset>> blend = ParseDatasetBlend(d.datasets());
        !blend.ok()) {
      return blend.status();
    }
    absl::StatusOr<std::vector<double>> ratios = ParseSplitRatios(d.split());
    if (!ratios.ok()) return ratios.status();
    if (d.sample_order() == config::DataSection::megatron_core && d.seed() > 0xffffffffull) {
      return Invalid(absl::StrFormat(
          "data.seed (%d) must be below 2^32 with data.sample_order megatron_core: its shuffles "
          "are numpy's RandomState(seed), which takes 32-bit seeds",
          d.seed()));
    }
    if ((*ratios)[0] <= 0) {
      return Invalid(
          absl::StrFormat("data.split \"%s\" leaves no training data (the first ratio "
                          "is 0)",
                          d.split()));
    }
    if (c.train().eval_interval() > 0 && (*ratios)[1] <= 0) {
      return Invalid(absl::StrFormat(
          "data.split \"%s\" leaves no validation data (the second ratio is 0), but "
          "train.eval_interval (%d) asks for evaluation; give the valid split a share or set "
          "train.eval_interval 0",
          d.split(), c.train().eval_interval()));
    }
    return absl::OkStatus();
  }
  if (d.token_file_path().empty()) {
    return Invalid("data.token_file_path must be set when data.source is token_file");
  }
  RETURN_IF_ERROR(InRange("data.eval_fraction", d.eval_fraction(), 0.0, 1.0, true));
  if (c.train().eval_interval() > 0 && d.eval_token_file_path().empty() &&
      d.eval_fraction() == 0.0) {
    return Invalid(absl::StrFormat(
        "data.eval_fraction must be > 0 to evaluate every train.eval_interval (%d) steps "
        "without a data.eval_token_file_path; or set train.eval_interval 0",
        c.train().eval_interval()));
  }
  return absl::OkStatus();
}

absl::Status ValidateParallelSection(const config::TrainConfig& c, int world_size) {
  const config::ParallelSection& p = c.parallel();
  RETURN_IF_ERROR(AtLeast("parallel.tp", p.tp(), 1));
  RETURN_IF_ERROR(AtLeast("parallel.ep", p.ep(), 1));
  RETURN_IF_ERROR(AtLeast("parallel.threads", p.threads(), 0));
  RETURN_IF_ERROR(Positive("parallel.grad_bucket_mb", p.grad_bucket_mb()));
  RETURN_IF_ERROR(Positive("parallel.collective_timeout_s", p.collective_timeout_s()));
  RETURN_IF_ERROR(NonNegative("parallel.step_timeout_s", p.step_timeout_s()));
  if (p.ep() > 1 && c.model().ffn() == config::ModelSection::dense) {
    return Invalid(absl::StrFormat(
        "parallel.ep (%d) needs a model with experts, but model.ffn is dense", p.ep()));
  }
  const int64_t routed_experts =
      c.model().n_experts() * std::max<int64_t>(1, c.model().granularity());
  if (p.ep() > 1 && routed_experts % p.ep() != 0) {
    if (c.model().granularity() > 1) {
      return Invalid(absl::StrFormat(
          "model.n_experts × model.granularity (%d routed experts) must be divisible by "
          "parallel.ep (%d)",
          routed_experts, p.ep()));
    }
    return Invalid(absl::StrFormat("model.n_experts (%d) must be divisible by parallel.ep (%d)",
                                   c.model().n_experts(), p.ep()));
  }
  if (p.tp() > 1 && c.model().n_heads() % p.tp() != 0) {
    return Invalid(absl::StrFormat("model.n_heads (%d) must be divisible by parallel.tp (%d)",
                                   c.model().n_heads(), p.tp()));
  }
  // world = tp × dp with ep dividing dp, so the world must be a multiple of tp × ep.
  const int64_t ranks_needed = p.tp() * p.ep();
  if (world_size % ranks_needed != 0) {
    std::vector<std::string> parts;
    if (p.tp() > 1) parts.push_back(absl::StrFormat("parallel.tp=%d", p.tp()));
    if (p.ep() > 1) parts.push_back(absl::StrFormat("parallel.ep=%d", p.ep()));
    return Invalid(absl::StrFormat(
        "%s needs %d ranks (or a multiple), but this run has %d rank%s; launch it with mpirun "
        "-np %d",
        absl::StrJoin(parts, " × "), ranks_needed, world_size, world_size == 1 ? "" : "s",
        ranks_needed));
  }
  return absl::OkStatus();
}

// The global batch must cut into whole micro-batches on every data-parallel rank.
absl::Status ValidateGlobalBatch(const config::TrainConfig& c, int world_size) {
  const config::TrainSection& t = c.train();
  RETURN_IF_ERROR(AtLeast("train.global_batch_size", t.global_batch_size(), 0));
  if (t.global_batch_size() == 0) return absl::OkStatus();
  const int64_t tp = c.parallel().tp(), dp = world_size / tp;
  const int64_t per_step = t.micro_batch_size() * dp;
  const std::string dp_text =
      tp > 1 ? absl::StrFormat("the data-parallel size %d (world %d / parallel.tp %d)", dp,
                               world_size, tp)
             : absl::StrFormat("the data-parallel size %d", dp);
  if (t.global_batch_size() % per_step != 0) {
    return Invalid(absl::StrFormat(
        "train.global_batch_size (%d) must be a multiple of train.micro_batch_size (%d) × %s = "
        "%d",
        t.global_batch_size(), t.micro_batch_size(), dp_text, per_step));
  }
  if (t.has_grad_accum_steps() && t.grad_accum_steps() * per_step != t.global_batch_size()) {
    return Invalid(absl::StrFormat(
        "train.grad_accum_steps (%d) disagrees with train.global_batch_size (%d): with "
        "train.micro_batch_size %d and %s it must be %d; set only train.global_batch_size",
        t.grad_accum_steps(), t.global_batch_size(), t.micro_batch_size(), dp_text,
        t.global_batch_size() / per_step));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateDevice(const config::TrainConfig& config, int local_size,
                            bool cuda_backend_built, int visible_gpus) {
  if (config.parallel().device() != config::ParallelSection::cuda) return absl::OkStatus();
  if (!cuda_backend_built) {
    return Invalid(
        "parallel.device is cuda, but this build has no CUDA backend (it was built without the "
        "CUDA toolkit); rebuild where nvcc is found, or set parallel.device cpu");
  }
  if (visible_gpus < local_size) {
    return Invalid(absl::StrFormat(
        "parallel.device is cuda with %d rank%s on this node, but %d GPU%s visible (each rank "
        "takes the GPU of its node-local rank); start fewer ranks per node",
        local_size, local_size == 1 ? "" : "s", visible_gpus, visible_gpus == 1 ? " is" : "s are"));
  }
  return absl::OkStatus();
}

Device DeviceFromConfig(const config::TrainConfig& config, int local_rank) {
  switch (config.parallel().device()) {
    case config::ParallelSection::cuda:
      return Device::Cuda(local_rank);
    case config::ParallelSection::strict_cpu:
      return Device::StrictCpu();
    default:
      return Device::Cpu();
  }
}

absl::Status ValidateTrainConfig(const config::TrainConfig& config, int world_size) {
  RETURN_IF_ERROR(ValidateModelSection(config.model()));
  RETURN_IF_ERROR(ValidateOptimizerSection(config.optimizer()));
  RETURN_IF_ERROR(ValidateTrainAndSchedule(config));
  RETURN_IF_ERROR(ValidateDataSection(config));
  RETURN_IF_ERROR(ValidateParallelSection(config, world_size));
  RETURN_IF_ERROR(ValidateGlobalBatch(config, world_size));
  RETURN_IF_ERROR(AtLeast("checkpoint.interval", config.checkpoint().interval(), 0));
  RETURN_IF_ERROR(AtLeast("checkpoint.keep_last", config.checkpoint().keep_last(), 1));
  RETURN_IF_ERROR(AtLeast("checkpoint.keep_every", config.checkpoint().keep_every(), 0));
  RETURN_IF_ERROR(AtLeast("logging.interval", config.logging().interval(), 1));
  RETURN_IF_ERROR(AtLeast("logging.sample_tokens", config.logging().sample_tokens(), 0));
  // The model's own checks, for anything it requires beyond the above, then what the layout
  // requires of its shapes (a tensor-split width, heads, vocabulary).
  const ModelConfig model = ModelConfigFromConfig(config);
  RETURN_IF_ERROR(ValidateModelConfig(model));
  return ValidateParallelLayout(model, static_cast<int>(config.parallel().tp()),
                                static_cast<int>(config.parallel().ep()));
}

}  // namespace aoetron
