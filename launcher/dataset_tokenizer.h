// The tokenizer a config's training data was made with: the `tokenizer` line of each dataset's
// .manifest (scripts/prepare_corpus.sh writes it). aoetron-eval turns losses into bits per byte
// with it, aoetron-generate encodes prompts and decodes samples.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "data/bpe_tokenizer.h"
#include "launcher/config.pb.h"

namespace aoetron {

// FailedPrecondition, saying why, when there is none: data.source is not indexed, a dataset has
// no manifest or no tokenizer line, or the datasets of a blend name different tokenizers.
absl::StatusOr<std::unique_ptr<data::BpeTokenizer>> DatasetTokenizer(
    const config::TrainConfig& config);

}  // namespace aoetron
