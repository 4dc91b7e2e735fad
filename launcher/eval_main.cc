// aoetron-eval: the held-out loss and bits per byte of a checkpoint — the number aoetron-train
// reports as val_loss for the same data, from any checkpoint, on any layout (the checkpoint is
// resharded on load, as --resume does; docs/training.md "Evaluating a checkpoint").
//
//   aoetron-eval --checkpoint runs/quickstart/checkpoints            # the newest complete step
//   mpirun -np 2 aoetron-eval --checkpoint DIR/step_200 --set train.eval_steps=64
//   aoetron-eval --checkpoint DIR --set data.datasets=corpora/datasets/other_prefix
//
// The config is the checkpoint's own (the run's config text), with parallel.tp = parallel.ep = 1
// and ZeRO-1 off unless --set says otherwise, then --config (replacing it) and every --set. The
// held-out data is what that config's trainer evaluates: train.eval_steps micro-batches of the
// validation split of data.datasets (or of the token file's eval part).
//
// Bits per byte = (loss in nats per token × scored tokens) / (ln 2 × bytes of those tokens'
// text), each scored target token's bytes taken from the dataset's tokenizer (the manifest's
// `tokenizer` line). Without a tokenizer (synthetic or token-file data, or a blend of datasets
// with different tokenizers) it is reported as null, with the reason.
//
// Output: one JSON line on stdout (rank 0): checkpoint, step, eval_steps, tokens, loss,
// bits_per_token, bytes, bits_per_byte. Exit status 0, or 1 with the cause on stderr (a bad
// command line or config, a checkpoint that does not fit the model, unreadable data).
#include <cmath>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "launcher/config_loader.h"
#include "launcher/dataset_tokenizer.h"
#include "launcher/job_launch.h"
#include "launcher/json_writer.h"
#include "launcher/trainer.h"

ABSL_FLAG(std::string, checkpoint, "",
          "A checkpoint step directory (<dir>/step_<N>) or a checkpoint root (its newest complete "
          "step). Required.");
ABSL_FLAG(std::string, config, "",
          "Use this config file instead of the checkpoint's own config text.");
ABSL_FLAG(std::string, set, "",
          "Override one config field: --set section.field=value (e.g. --set train.eval_steps=64, "
          "--set data.datasets=PREFIX, --set parallel.tp=2). Repeatable, applied in order.");

namespace {

constexpr char kProgram[] = "aoetron-eval";
namespace launch = aoetron::launch;

constexpr char kUsage[] =
    "the held-out loss and bits per byte of a checkpoint (aoetron-train's val_loss for the same "
    "data).\n\n"
    "  aoetron-eval --checkpoint runs/quickstart/checkpoints\n"
    "  mpirun -np 2 aoetron-eval --checkpoint DIR/step_200 --set train.eval_steps=64\n";

// Bytes of each token id's text under the dataset's tokenizer, or an error saying why there is
// none (then bits per byte is not reported).
absl::StatusOr<std::vector<int64_t>> TokenByteLengths(const aoetron::config::TrainConfig& config) {
  absl::StatusOr<std::unique_ptr<aoetron::data::BpeTokenizer>> tokenizer =
      aoetron::DatasetTokenizer(config);
  if (!tokenizer.ok()) return tokenizer.status();
  std::vector<int64_t> bytes(config.model().vocab_size(), 0);
  for (int32_t id = 0; id < static_cast<int32_t>(bytes.size()); ++id) {
    // Ids without text (the end-of-text token, padding above the tokenizer's range) are 0 bytes:
    // they carry none of the documents' text.
    if (id == (*tokenizer)->end_of_text_id()) continue;
    absl::StatusOr<std::string> text = (*tokenizer)->Decode({id});
    if (text.ok()) bytes[id] = static_cast<int64_t>(text->size());
  }
  return bytes;
}

int Evaluate(aoetron::parallel::DistributedContext& context,
             const aoetron::config::TrainConfig& config, const std::string& step_directory,
             aoetron::TrainerParallelism& parallelism) {
  static std::ostringstream sink;  // the trainer's notes stay quiet: one JSON line is the output
  aoetron::TrainerIo io{&sink, &std::cerr};
  aoetron::TrainerOptions options;
  options.resume_from = step_directory;
  absl::StatusOr<std::unique_ptr<aoetron::Trainer>> trainer =
      aoetron::Trainer::Create(config, io, parallelism, options);
  if (!trainer.ok()) return launch::FailRun(context, kProgram, trainer.status());
  std::vector<int64_t> target_counts;
  absl::StatusOr<double> loss = (*trainer)->Evaluate(&target_counts);
  if (!loss.ok()) return launch::FailRun(context, kProgram, loss.status());
  if (context.world_rank() != 0) return 0;

  int64_t tokens = 0;
  for (const int64_t count : target_counts) tokens += count;
  aoetron::JsonObjectWriter json;
  json.String("checkpoint", step_directory)
      .Integer("step", (*trainer)->optimizer_steps())
      .Integer("eval_steps", config.train().eval_steps())
      .Integer("tokens", tokens)
      .Number("loss", *loss)
      .Number("bits_per_token", *loss / std::log(2.0));
  absl::StatusOr<std::vector<int64_t>> lengths = TokenByteLengths(config);
  if (lengths.ok()) {
    int64_t bytes = 0;
    for (size_t id = 0; id < target_counts.size(); ++id)
      bytes += target_counts[id] * (*lengths)[id];
    json.Integer("bytes", bytes);
    json.Number("bits_per_byte",
                *loss * static_cast<double>(tokens) / (std::log(2.0) * static_cast<double>(bytes)));
  } else {
    json.Null("bytes")
        .Null("bits_per_byte")
        .String("bits_per_byte_note", std::string(lengths.status().message()));
  }
  std::cout << json.Finish() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::StatusOr<std::vector<std::string>> parsed =
      aoetron::launch::ParseProgramCommandLine(&argc, argv, "eval_main", kUsage, " (see --help)");
  if (!parsed.ok()) {
    return aoetron::launch::FailBeforeMpi(kProgram, std::string(parsed.status().message()));
  }
  const std::vector<std::string>& overrides = *parsed;

  return launch::RunOnCheckpoint(
      &argc, &argv, kProgram, absl::GetFlag(FLAGS_checkpoint), absl::GetFlag(FLAGS_config),
      overrides, [](launch::CheckpointJob& job) {
        return Evaluate(*job.context, *job.config, job.step_directory, *job.parallelism);
      });
}
