#include "launcher/dataset_tokenizer.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data/shard_manifest.h"
#include "launcher/indexed_source.h"

namespace aoetron {

absl::StatusOr<std::unique_ptr<data::BpeTokenizer>> DatasetTokenizer(
    const config::TrainConfig& config) {
  if (config.data().source() != config::DataSection::indexed) {
    return absl::FailedPreconditionError("the data has no tokenizer (data.source is not indexed)");
  }
  absl::StatusOr<std::vector<data::WeightedDataset>> blend =
      ParseDatasetBlend(config.data().datasets());
  if (!blend.ok()) return blend.status();
  std::string directory;
  for (const data::WeightedDataset& dataset : *blend) {
    absl::StatusOr<data::ShardManifest> manifest =
        data::ReadShardManifest(dataset.path + ".manifest");
    if (!manifest.ok() || manifest->tokenizer.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat(dataset.path, " names no tokenizer (no .manifest with a tokenizer line)"));
    }
    if (!directory.empty() && manifest->tokenizer != directory) {
      return absl::FailedPreconditionError("the blended datasets use different tokenizers");
    }
    directory = manifest->tokenizer;
  }
  return data::BpeTokenizer::LoadFromDirectory(directory);
}

}  // namespace aoetron
