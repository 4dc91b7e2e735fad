#include "data/gpt_data_loader.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"
#include "data/numpy_sum.h"

namespace aoetron::data {

namespace {

// How many samples each dataset of the blend must provide, how many the blend has, and the
// shares its index is built from (blending.h), under the configured order. Weight-0 datasets
// get no samples and no share. With num_samples == 0 (one epoch of each dataset) only the
// shares are decided here; the size follows from the datasets' lengths.
struct BlendPlan {
  std::vector<int64_t> dataset_samples;  // per listed dataset; 0 for weight 0
  int64_t size = 0;                      // samples of the blend (num_samples > 0)
  std::vector<double> shares;            // per listed dataset; 0 for weight 0
};

BlendPlan PlanBlend(const std::vector<double>& weights, int64_t num_samples, SampleOrder order) {
  BlendPlan plan;
  plan.dataset_samples.assign(weights.size(), 0);
  std::vector<size_t> positive;
  for (size_t d = 0; d < weights.size(); ++d) {
    if (weights[d] > 0) positive.push_back(d);
  }
  if (order == SampleOrder::kMegatronCore) {
    // Normalised over the whole list (a 0 term can change numpy's summation order), once for
    // the requests and once more for the blending index.
    const std::vector<double> normalized = MegatronNormalize(weights);
    plan.shares = MegatronNormalize(normalized);
    if (num_samples > 0) {
      const std::vector<BlendRequest> requests = MegatronBlendRequests(normalized, num_samples);
      for (size_t d : positive) {
        plan.dataset_samples[d] = requests[d].build;
        plan.size += requests[d].target;
      }
    }
    return plan;
  }
  // aoetron_v1: exact counts of the first num_samples blended samples.
  std::vector<double> positive_weights;
  for (size_t d : positive) positive_weights.push_back(weights[d]);
  const std::vector<double> positive_shares = LegacyBlendShares(positive_weights);
  plan.shares.assign(weights.size(), 0.0);
  for (size_t k = 0; k < positive.size(); ++k) plan.shares[positive[k]] = positive_shares[k];
  if (num_samples > 0) {
    absl::StatusOr<BlendingIndex> counts = BuildBlendingIndex(positive_shares, num_samples);
    for (size_t k = 0; k < positive.size(); ++k) {
      plan.dataset_samples[positive[k]] = std::max<int64_t>(counts->samples_per_dataset[k], 1);
    }
    plan.size = num_samples;
  }
  return plan;
}

}  // namespace

absl::StatusOr<std::unique_ptr<BlendedGptDataset>> BlendedGptDataset::Create(
    const GptDataLoaderConfig& config) {
  if (config.datasets.empty()) return absl::InvalidArgumentError("no datasets given");
  if (config.seq_length < 1) {
    return absl::InvalidArgumentError(absl::StrFormat("seq_length %d < 1", config.seq_length));
  }
  if (config.datasets.size() > 32767) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%d datasets: a blend holds at most 32767", config.datasets.size()));
  }
  std::unique_ptr<BlendedGptDataset> blended(new BlendedGptDataset());
  blended->seq_length_ = config.seq_length;
  blended->vocab_size_ = config.vocab_size;
  std::vector<double> weights;
  double weight_sum = 0;
  for (const WeightedDataset& d : config.datasets) {
    if (!(d.weight >= 0) || !std::isfinite(d.weight)) {
      return absl::InvalidArgumentError(absl::StrFormat("%s: bad weight %f", d.path, d.weight));
    }
    weights.push_back(d.weight);
    weight_sum += d.weight;
  }
  // A sum that overflows would normalise every share to 0 (PlanBlend relies on shares > 0).
  if (!(weight_sum > 0) || !std::isfinite(weight_sum)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("dataset weights sum to %g: need a finite sum > 0", weight_sum));
  }
  // One dataset is read directly, as Megatron-Core reads a single unweighted prefix.
  blended->single_ = config.datasets.size() == 1;
  const BlendPlan plan = blended->single_
                             ? BlendPlan{{config.num_samples}, config.num_samples, {1.0}}
                             : PlanBlend(weights, config.num_samples, config.order);

  for (size_t d = 0; d < config.datasets.size(); ++d) {
    if (weights[d] == 0) {
      blended->datasets_.push_back(nullptr);
      continue;
    }
    absl::StatusOr<std::unique_ptr<ShardedDataset>> data =
        ShardedDataset::Open(config.datasets[d].path);
    if (!data.ok()) return data.status();
    if (config.vocab_size > 0 && (*data)->vocab_size() > config.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: tokenized with a vocabulary of %d, larger than the model's %d",
                          config.datasets[d].path, (*data)->vocab_size(), config.vocab_size));
    }
    GptDatasetOptions options;
    options.seq_length = config.seq_length;
    options.num_samples = plan.dataset_samples[d];
    options.seed = config.seed;
    options.split_ratios = config.split_ratios;
    options.split = config.split;
    options.order = config.order;
    options.cache_dir = config.cache_dir;
    options.build_indices = config.build_indices;
    options.wait_timeout_seconds = config.wait_timeout_seconds;
    absl::StatusOr<std::unique_ptr<GptDataset>> ds =
        GptDataset::Create(std::shared_ptr<const ShardedDataset>(*std::move(data)), options);
    if (!ds.ok()) return ds.status();
    blended->datasets_.push_back(*std::move(ds));
  }
  if (blended->single_) {
    blended->num_samples_ =
        config.num_samples > 0 ? config.num_samples : blended->datasets_[0]->num_samples();
    return blended;
  }
  // The blend over the datasets of positive weight; blend_datasets_ maps its numbering back.
  std::vector<double> shares;
  for (size_t d = 0; d < weights.size(); ++d) {
    if (weights[d] > 0) {
      blended->blend_datasets_.push_back(static_cast<int>(d));
      shares.push_back(plan.shares[d]);
    }
  }
  int64_t total = plan.size;
  if (config.num_samples == 0) {
    // One epoch of each: until the first dataset runs out.
    double limit = INFINITY;
    for (size_t k = 0; k < shares.size(); ++k) {
      const int d = blended->blend_datasets_[k];
      limit = std::min(limit, blended->datasets_[d]->num_samples() / shares[k]);
    }
    total = std::max<int64_t>(1, static_cast<int64_t>(std::floor(limit)));
  }
  absl::StatusOr<BlendingIndex> blend = BuildBlendingIndex(shares, total);
  if (!blend.ok()) return blend.status();
  blended->blend_ = *std::move(blend);
  blended->num_samples_ = total;
  return blended;
}

absl::Status BlendedGptDataset::GetSample(int64_t i, int32_t* out) const {
  const int64_t n = num_samples_;
  const int64_t wrapped = ((i % n) + n) % n;
  const GptDataset* ds;
  int64_t sample;
  if (single_) {
    ds = datasets_[0].get();
    sample = wrapped;
  } else {
    ds = datasets_[blend_datasets_[blend_.dataset_index[wrapped]]].get();
    sample = blend_.dataset_sample_index[wrapped];
  }
  ds->GetSample(sample, out);
  if (vocab_size_ > 0) {
    for (int64_t t = 0; t <= seq_length_; ++t) {
      if (out[t] < 0 || out[t] >= vocab_size_) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: sample %d holds token %d, outside the vocabulary [0, %d) (run aoetron-data "
            "verify on it to find the byte offset)",
            ds->data().path(), i, out[t], vocab_size_));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<GptDataLoader>> GptDataLoader::Create(
    const GptDataLoaderConfig& config, int64_t consumed_samples) {
  if (config.dp_size < 1 || config.dp_rank < 0 || config.dp_rank >= config.dp_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("dp_rank %d is not in [0, dp_size %d)", config.dp_rank, config.dp_size));
  }
  if (config.global_batch_size < 1 || config.global_batch_size % config.dp_size != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("global_batch_size %d must be a positive multiple of dp_size %d",
                        config.global_batch_size, config.dp_size));
  }
  const int64_t mbs = config.micro_batch_size > 0 ? config.micro_batch_size
                                                  : config.global_batch_size / config.dp_size;
  const int64_t step = mbs * config.dp_size;
  if (config.global_batch_size % step != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "global_batch_size %d is not a multiple of micro_batch_size %d x dp_size %d",
        config.global_batch_size, mbs, config.dp_size));
  }
  if (consumed_samples < 0 || consumed_samples % step != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("consumed_samples %d is not a multiple of micro_batch_size x dp_size = %d",
                        consumed_samples, step));
  }
  if (config.prefetch_depth < 1) return absl::InvalidArgumentError("prefetch_depth < 1");
  absl::StatusOr<std::unique_ptr<BlendedGptDataset>> dataset = BlendedGptDataset::Create(config);
  if (!dataset.ok()) return dataset.status();
  std::unique_ptr<GptDataLoader> loader(new GptDataLoader());
  loader->config_ = config;
  loader->dataset_ = *std::move(dataset);
  loader->micro_batch_size_ = mbs;
  loader->micro_batches_per_global_batch_ = config.global_batch_size / step;
  loader->consumed_samples_ = consumed_samples;
  loader->prefetcher_ =
      std::thread([l = loader.get(), consumed_samples] { l->PrefetchLoop(consumed_samples); });
  return loader;
}

GptDataLoader::~GptDataLoader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (prefetcher_.joinable()) prefetcher_.join();
}

absl::StatusOr<GptBatch> GptDataLoader::MakeBatch(int64_t step_start) const {
  const int64_t L = config_.seq_length;
  GptBatch batch;
  batch.batch_size = micro_batch_size_;
  batch.seq_length = L;
  batch.first_sample = step_start + config_.dp_rank * micro_batch_size_;
  batch.tokens.resize(static_cast<size_t>(micro_batch_size_ * L));
  batch.targets.resize(static_cast<size_t>(micro_batch_size_ * L));
  std::vector<int32_t> sample(static_cast<size_t>(L + 1));
  for (int64_t row = 0; row < micro_batch_size_; ++row) {
    if (absl::Status s = dataset_->GetSample(batch.first_sample + row, sample.data()); !s.ok()) {
      return s;
    }
    std::copy(sample.begin(), sample.end() - 1, batch.tokens.begin() + row * L);
    std::copy(sample.begin() + 1, sample.end(), batch.targets.begin() + row * L);
  }
  return batch;
}

void GptDataLoader::PrefetchLoop(int64_t next_step_start) {
  const int64_t step = micro_batch_size_ * config_.dp_size;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock,
               [&] { return stop_ || static_cast<int>(ready_.size()) < config_.prefetch_depth; });
      if (stop_) return;
    }
    absl::StatusOr<GptBatch> batch = MakeBatch(next_step_start);
    const bool failed = !batch.ok();
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready_.push_back(std::move(batch));
    }
    cv_.notify_all();
    if (failed) return;
    next_step_start += step;
  }
}

absl::StatusOr<GptBatch> GptDataLoader::Next() {
  absl::StatusOr<GptBatch> batch;
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !ready_.empty(); });
    // An error stays at the front: every later call fails the same way.
    if (!ready_.front().ok()) return ready_.front().status();
    batch = std::move(ready_.front());
    ready_.pop_front();
  }
  cv_.notify_all();
  consumed_samples_ += micro_batch_size_ * config_.dp_size;
  return batch;
}

}  // namespace aoetron::data
