#include "launcher/batch_source.h"

#include <cmath>

#include "absl/strings/str_format.h"
#include "core/check.h"
#include "core/rng.h"
#include "launcher/indexed_source.h"
#include "launcher/synthetic_data.h"
#include "launcher/token_file_data.h"

namespace aoetron {
namespace {

class RandomAccessTrainStream final : public TrainBatchStream {
 public:
  RandomAccessTrainStream(std::unique_ptr<TokenBatchSource> source, int64_t micro_batch_size,
                          const DataParallelPosition& position)
      : source_(std::move(source)),
        micro_batch_size_(micro_batch_size),
        position_(position),
        consumed_(position.consumed_samples) {
    AOETRON_CHECK(micro_batch_size >= 1 && position.dp_size >= 1 && position.dp_rank >= 0 &&
                  position.dp_rank < position.dp_size);
    AOETRON_CHECK(consumed_ % (micro_batch_size * position.dp_size) == 0)
        << "consumed samples " << consumed_ << " is not a multiple of micro_batch_size · dp";
  }

  absl::Status Next(Tensor& tokens, Tensor& targets) override {
    // Micro-batch i of the source holds samples i·mbs … i·mbs + mbs − 1, so rank r's block of
    // this step, samples [c + r·mbs, c + (r+1)·mbs), is micro-batch c/mbs + r.
    source_->FillBatch(consumed_ / micro_batch_size_ + position_.dp_rank, tokens, targets);
    consumed_ += micro_batch_size_ * position_.dp_size;
    return absl::OkStatus();
  }
  int64_t consumed_samples() const override { return consumed_; }

 private:
  std::unique_ptr<TokenBatchSource> source_;
  int64_t micro_batch_size_;
  DataParallelPosition position_;
  int64_t consumed_;
};

class RandomAccessEvalSource final : public EvalBatchSource {
 public:
  explicit RandomAccessEvalSource(std::unique_ptr<TokenBatchSource> source)
      : source_(std::move(source)) {}
  absl::Status Fill(int64_t index, Tensor& tokens, Tensor& targets) const override {
    source_->FillBatch(index, tokens, targets);
    return absl::OkStatus();
  }

 private:
  std::unique_ptr<TokenBatchSource> source_;
};

}  // namespace

std::unique_ptr<TrainBatchStream> MakeRandomAccessTrainStream(
    std::unique_ptr<TokenBatchSource> source, int64_t micro_batch_size,
    const DataParallelPosition& position) {
  return std::make_unique<RandomAccessTrainStream>(std::move(source), micro_batch_size, position);
}

std::unique_ptr<EvalBatchSource> MakeRandomAccessEvalSource(
    std::unique_ptr<TokenBatchSource> source) {
  return std::make_unique<RandomAccessEvalSource>(std::move(source));
}

absl::StatusOr<DataStreams> OpenDataStreams(const config::TrainConfig& config,
                                            const DataParallelPosition& position) {
  if (config.data().source() == config::DataSection::indexed) {
    return OpenIndexedStreams(config, position);
  }
  absl::StatusOr<BatchSources> sources = OpenBatchSources(config);
  if (!sources.ok()) return sources.status();
  DataStreams streams;
  streams.train = MakeRandomAccessTrainStream(std::move(sources->train),
                                              config.train().micro_batch_size(), position);
  if (sources->eval != nullptr) streams.eval = MakeRandomAccessEvalSource(std::move(sources->eval));
  return streams;
}

absl::StatusOr<BatchSources> OpenBatchSources(const config::TrainConfig& config) {
  const config::DataSection& data = config.data();
  const int64_t vocab = config.model().vocab_size(), seq = config.model().seq_len();
  const bool evaluate = config.train().eval_interval() > 0;
  BatchSources sources;
  AOETRON_CHECK(data.source() != config::DataSection::indexed)
      << "OpenBatchSources: the indexed source is opened by OpenDataStreams";
  if (data.source() == config::DataSection::synthetic) {
    sources.train = std::make_unique<SyntheticBigramSource>(vocab, data.synthetic_branching(),
                                                            data.seed(), DataSplit::kTrain);
    if (evaluate) {
      sources.eval = std::make_unique<SyntheticBigramSource>(vocab, data.synthetic_branching(),
                                                             data.seed(), DataSplit::kEval);
    }
    return sources;
  }

  absl::StatusOr<std::shared_ptr<const MappedTokenFile>> file =
      MappedTokenFile::Open(data.token_file_path(), vocab);
  if (!file.ok()) return file.status();
  const int64_t total = (*file)->num_tokens();
  const bool separate_eval_file = !data.eval_token_file_path().empty();
  // Without a separate file the last eval_fraction of the tokens is held out, whether or not
  // this run evaluates, so turning evaluation on or off never changes the training samples.
  const int64_t held_out =
      separate_eval_file
          ? 0
          : static_cast<int64_t>(std::floor(static_cast<double>(total) * data.eval_fraction()));
  absl::StatusOr<std::unique_ptr<TokenBatchSource>> train = MakeTokenFileSource(
      *file, 0, total - held_out, seq, data.seed(), StableHash("token_file.train"),
      held_out > 0 ? absl::StrFormat("the training part (first %d tokens; the last %d are held "
                                     "out by data.eval_fraction %g)",
                                     total - held_out, held_out, data.eval_fraction())
                   : std::string("the file"));
  if (!train.ok()) return train.status();
  sources.train = *std::move(train);
  if (!evaluate) return sources;

  absl::StatusOr<std::unique_ptr<TokenBatchSource>> eval;
  if (separate_eval_file) {
    absl::StatusOr<std::shared_ptr<const MappedTokenFile>> eval_file =
        MappedTokenFile::Open(data.eval_token_file_path(), vocab);
    if (!eval_file.ok()) return eval_file.status();
    const int64_t eval_total = (*eval_file)->num_tokens();
    eval = MakeTokenFileSource(*eval_file, 0, eval_total, seq, data.seed(),
                               StableHash("token_file.eval"), "the evaluation file");
  } else {
    eval = MakeTokenFileSource(
        *file, total - held_out, total, seq, data.seed(), StableHash("token_file.eval"),
        absl::StrFormat("the held-out part (last %d tokens, data.eval_fraction %g)", held_out,
                        data.eval_fraction()));
  }
  if (!eval.ok()) return eval.status();
  sources.eval = *std::move(eval);
  return sources;
}

}  // namespace aoetron
