// The Megatron indexed-dataset source (data.source indexed): training micro-batches from
// data::GptDataLoader, evaluation micro-batches from the valid split.
//
// data.datasets names one dataset prefix or a blend "W1 PREFIX1 W2 PREFIX2 ..." (Megatron's
// --data-path), data.split the train/valid/test ratios ("969,30,1"). Training reads the train
// split through GptDataLoader: a prefetch thread, this data-parallel rank's slice of every
// micro-batch step (rank r of dp reads samples [c + r·mbs, c + (r+1)·mbs) of the step starting at
// c = consumed samples), and a state that is only the count of consumed samples (all ranks
// together), so a run resumes exactly from a saved count. Evaluation micro-batch i is samples
// [i·mbs, (i+1)·mbs) of the valid split's blend, read by random access (always the same ones).
//
// Sample indices are cached (data.index_cache_dir); `build_indices` is true on one process
// (global rank 0), which builds missing ones while the others wait for the files.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/gpt_data_loader.h"
#include "launcher/batch_source.h"
#include "launcher/config.pb.h"

namespace aoetron {

// "PREFIX" or "W1 PREFIX1 W2 PREFIX2 ..." → (prefix, weight) pairs. Errors name data.datasets:
// an empty string, an odd number of words in a blend, a weight that is not a finite number ≥ 0,
// weights summing to 0.
absl::StatusOr<std::vector<data::WeightedDataset>> ParseDatasetBlend(const std::string& text);

// "969,30,1" → {969, 30, 1}: one to three comma-separated finite numbers ≥ 0 with a positive
// sum (missing ratios are 0, as in Megatron). Errors name data.split.
absl::StatusOr<std::vector<double>> ParseSplitRatios(const std::string& text);

// data.sample_order as the data library's enum.
data::SampleOrder SampleOrderFromConfig(const config::TrainConfig& config);

// Whether a run may resume from a checkpoint's data position: the checkpoint records the sample
// order its run read (TrainingState counter "data_sample_order": data::SampleOrderVersion; none
// in checkpoints written before the record, which all read aoetron_v1). OK when the config
// reads the same order, or reads no indexed datasets; otherwise FailedPrecondition naming the
// checkpoint, what changed and the setting that resumes on the same samples.
absl::Status CheckResumedSampleOrder(const config::TrainConfig& config,
                                     const std::map<std::string, int64_t>& checkpoint_counters,
                                     const std::string& checkpoint);

// Opens the training stream and (when train.eval_interval > 0) the evaluation source for the
// config (validated), this rank's data-parallel position and the samples already consumed.
// Errors name the dataset file (missing, malformed, a vocabulary larger than model.vocab_size)
// or the split (no documents in it).
absl::StatusOr<DataStreams> OpenIndexedStreams(const config::TrainConfig& config,
                                               const DataParallelPosition& position);

}  // namespace aoetron
