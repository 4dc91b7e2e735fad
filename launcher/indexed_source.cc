#include "launcher/indexed_source.h"

#include <cmath>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/check.h"
#include "launcher/config_conversion.h"

namespace aoetron {
namespace {

// Copies a batch of the loader or the dataset into the trainer's i32 [mbs, T] tensors.
void CopyRows(const std::vector<int32_t>& rows, Tensor& out) {
  AOETRON_CHECK_EQ(static_cast<int64_t>(rows.size()), out.numel());
  std::memcpy(out.data<int32_t>(), rows.data(), rows.size() * sizeof(int32_t));
}

class IndexedTrainStream final : public TrainBatchStream {
 public:
  explicit IndexedTrainStream(std::unique_ptr<data::GptDataLoader> loader)
      : loader_(std::move(loader)) {}

  absl::Status Next(Tensor& tokens, Tensor& targets) override {
    absl::StatusOr<data::GptBatch> batch = loader_->Next();
    if (!batch.ok()) return batch.status();
    CopyRows(batch->tokens, tokens);
    CopyRows(batch->targets, targets);
    return absl::OkStatus();
  }
  int64_t consumed_samples() const override { return loader_->consumed_samples(); }

 private:
  std::unique_ptr<data::GptDataLoader> loader_;
};

class IndexedEvalSource final : public EvalBatchSource {
 public:
  IndexedEvalSource(std::unique_ptr<data::BlendedGptDataset> dataset, int64_t micro_batch_size)
      : dataset_(std::move(dataset)), micro_batch_size_(micro_batch_size) {}

  // Row b is held-out sample index·mbs + b: tokens t[0..T), targets t[1..T].
  absl::Status Fill(int64_t index, Tensor& tokens, Tensor& targets) const override {
    const int64_t seq = dataset_->seq_length();
    AOETRON_CHECK(tokens.numel() == micro_batch_size_ * seq && targets.numel() == tokens.numel());
    std::vector<int32_t> sample(seq + 1);
    int32_t* token_rows = tokens.data<int32_t>();
    int32_t* target_rows = targets.data<int32_t>();
    for (int64_t b = 0; b < micro_batch_size_; ++b) {
      if (absl::Status read = dataset_->GetSample(index * micro_batch_size_ + b, sample.data());
          !read.ok()) {
        return read;
      }
      std::memcpy(token_rows + b * seq, sample.data(), seq * sizeof(int32_t));
      std::memcpy(target_rows + b * seq, sample.data() + 1, seq * sizeof(int32_t));
    }
    return absl::OkStatus();
  }

 private:
  std::unique_ptr<data::BlendedGptDataset> dataset_;
  int64_t micro_batch_size_;
};

absl::Status WithContext(const absl::Status& status, const std::string& what) {
  return absl::Status(status.code(), absl::StrCat(what, ": ", status.message()));
}

}  // namespace

absl::StatusOr<std::vector<data::WeightedDataset>> ParseDatasetBlend(const std::string& text) {
  const std::vector<std::string> words =
      absl::StrSplit(text, absl::ByAnyChar(" \t\n"), absl::SkipEmpty());
  if (words.empty()) {
    return absl::InvalidArgumentError(
        "data.datasets must name a dataset prefix (or a blend \"W1 PREFIX1 W2 PREFIX2 ...\") when "
        "data.source is indexed");
  }
  if (words.size() == 1) return std::vector<data::WeightedDataset>{{words[0], 1.0}};
  if (words.size() % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "data.datasets \"%s\": a blend is pairs \"WEIGHT PREFIX\", but it has %d words", text,
        words.size()));
  }
  std::vector<data::WeightedDataset> blend;
  double sum = 0.0;
  for (size_t i = 0; i < words.size(); i += 2) {
    double weight = 0.0;
    if (!absl::SimpleAtod(words[i], &weight) || !std::isfinite(weight) || weight < 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "data.datasets \"%s\": weight %d (\"%s\", before %s) must be a finite number ≥ 0", text,
          i / 2 + 1, words[i], words[i + 1]));
    }
    blend.push_back({words[i + 1], weight});
    sum += weight;
  }
  if (!(sum > 0)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("data.datasets \"%s\": the weights sum to 0", text));
  }
  return blend;
}

absl::StatusOr<std::vector<double>> ParseSplitRatios(const std::string& text) {
  const std::vector<std::string> parts = absl::StrSplit(text, ',');
  if (parts.size() > 3 || text.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "data.split \"%s\" must be one to three comma-separated ratios (train,valid,test), e.g. "
        "\"969,30,1\"",
        text));
  }
  std::vector<double> ratios(3, 0.0);
  double sum = 0.0;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!absl::SimpleAtod(absl::StripAsciiWhitespace(parts[i]), &ratios[i]) ||
        !std::isfinite(ratios[i]) || ratios[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("data.split \"%s\": ratio %d (\"%s\") must be a finite number ≥ 0", text,
                          i + 1, parts[i]));
    }
    sum += ratios[i];
  }
  if (!(sum > 0)) {
    return absl::InvalidArgumentError(absl::StrFormat("data.split \"%s\" sums to 0", text));
  }
  return ratios;
}

data::SampleOrder SampleOrderFromConfig(const config::TrainConfig& config) {
  return config.data().sample_order() == config::DataSection::aoetron_v1
             ? data::SampleOrder::kAoetronV1
             : data::SampleOrder::kMegatronCore;
}

absl::Status CheckResumedSampleOrder(const config::TrainConfig& config,
                                     const std::map<std::string, int64_t>& checkpoint_counters,
                                     const std::string& checkpoint) {
  if (config.data().source() != config::DataSection::indexed) return absl::OkStatus();
  const auto recorded = checkpoint_counters.find("data_sample_order");
  const int64_t version = recorded == checkpoint_counters.end() ? 1 : recorded->second;
  absl::StatusOr<data::SampleOrder> saved = data::SampleOrderOfVersion(version);
  if (!saved.ok()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("resuming from %s: %s", checkpoint, saved.status().message()));
  }
  const data::SampleOrder wanted = SampleOrderFromConfig(config);
  if (*saved == wanted) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrFormat(
      "resuming from %s: its run read its samples in the %s order%s, but this run would read "
      "them in the %s order (data.sample_order), so from this checkpoint's data position on it "
      "would train on different samples than the run it continues. To continue on the same "
      "samples, set data.sample_order: %s (e.g. --set data.sample_order=%s); %s (docs/data.md, "
      "\"Sample order\")",
      checkpoint, data::SampleOrderName(*saved),
      recorded == checkpoint_counters.end() ? " (it predates Megatron-Core's order in this project)"
                                            : "",
      data::SampleOrderName(wanted), data::SampleOrderName(*saved), data::SampleOrderName(*saved),
      *saved == data::SampleOrder::kAoetronV1
          ? "to train on Megatron-Core's samples instead, start a new run"
          : "aoetron_v1 exists only to finish runs that started under it"));
}

absl::StatusOr<DataStreams> OpenIndexedStreams(const config::TrainConfig& config,
                                               const DataParallelPosition& position) {
  absl::StatusOr<std::vector<data::WeightedDataset>> blend =
      ParseDatasetBlend(config.data().datasets());
  if (!blend.ok()) return blend.status();
  absl::StatusOr<std::vector<double>> ratios = ParseSplitRatios(config.data().split());
  if (!ratios.ok()) return ratios.status();
  const BatchLayout batch = ResolveBatchLayout(config, position.dp_size);

  data::GptDataLoaderConfig loader_config;
  loader_config.datasets = *blend;
  loader_config.split_ratios = *ratios;
  loader_config.split = "train";
  loader_config.seq_length = config.model().seq_len();
  loader_config.global_batch_size = batch.global_batch_size;
  loader_config.micro_batch_size = batch.micro_batch_size;
  loader_config.dp_rank = position.dp_rank;
  loader_config.dp_size = position.dp_size;
  loader_config.seed = config.data().seed();
  loader_config.order = SampleOrderFromConfig(config);
  // The samples the whole run consumes; past them the order wraps around.
  loader_config.num_samples = config.train().steps() * batch.global_batch_size;
  loader_config.cache_dir = config.data().index_cache_dir();
  loader_config.build_indices = position.build_indices;
  loader_config.vocab_size = config.model().vocab_size();
  absl::StatusOr<std::unique_ptr<data::GptDataLoader>> loader =
      data::GptDataLoader::Create(loader_config, position.consumed_samples);
  if (!loader.ok()) return WithContext(loader.status(), "data.datasets (train split)");
  DataStreams streams;
  streams.train = std::make_unique<IndexedTrainStream>(*std::move(loader));
  if (config.train().eval_interval() <= 0) return streams;

  data::GptDataLoaderConfig eval_config = loader_config;
  eval_config.split = "valid";
  eval_config.num_samples = config.train().eval_steps() * batch.micro_batch_size;
  absl::StatusOr<std::unique_ptr<data::BlendedGptDataset>> eval =
      data::BlendedGptDataset::Create(eval_config);
  if (!eval.ok()) return WithContext(eval.status(), "data.datasets (valid split)");
  streams.eval = std::make_unique<IndexedEvalSource>(*std::move(eval), batch.micro_batch_size);
  return streams;
}

}  // namespace aoetron
