// aoetron-generate: text from a checkpoint and a prompt. The prompt runs through the model in one
// call, then each new token costs one decoding step against the KV cache (GptModel::Decode).
// Deterministic for a seed: the same text on every layout, thread count and machine
// (launcher/token_sampler.h), up to the rounding of the logits in the last bits.
//
//   aoetron-generate --checkpoint runs/quickstart/checkpoints --prompt "In the beginning"
//   mpirun -np 2 aoetron-generate --checkpoint DIR --prompt "And God said" --set parallel.tp=2
//       --temperature 0.8 --top_k 40 --seed 7 --max_new_tokens 100   (one command line)
//
// The config is the checkpoint's own, laid out for one process unless --set says otherwise (as
// aoetron-eval). The prompt is encoded with the dataset's tokenizer (its .manifest); without one,
// --prompt_ids takes comma-separated token ids and the output is ids. Generation stops after
// --max_new_tokens, at the end-of-text token, or at model.seq_len.
//
// Output (rank 0): the prompt and its continuation as text on stdout, or with --json one line:
// prompt_ids, ids (the new ones), text.
#include <algorithm>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "launcher/dataset_tokenizer.h"
#include "launcher/job_launch.h"
#include "launcher/json_writer.h"
#include "launcher/text_generation.h"
#include "launcher/trainer.h"

ABSL_FLAG(std::string, checkpoint, "",
          "A checkpoint step directory or root (its newest complete step). Required.");
ABSL_FLAG(std::string, config, "", "Use this config file instead of the checkpoint's own.");
ABSL_FLAG(std::string, set, "", "Override one config field (repeatable), e.g. parallel.tp=2.");
ABSL_FLAG(std::string, prompt, "", "The prompt text (encoded with the dataset's tokenizer).");
ABSL_FLAG(std::string, prompt_ids, "", "The prompt as comma-separated token ids instead.");
ABSL_FLAG(int64_t, max_new_tokens, 64, "Tokens to generate at most.");
ABSL_FLAG(double, temperature, 1.0, "Sampling temperature; 0 = greedy.");
ABSL_FLAG(int64_t, top_k, 0, "Sample from the k most likely tokens only; 0 = all.");
ABSL_FLAG(double, top_p, 1.0, "Nucleus sampling: the smallest set with this probability mass.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the sample.");
ABSL_FLAG(bool, json, false, "Print one JSON line (prompt_ids, ids, text) instead of text.");

namespace {

constexpr char kProgram[] = "aoetron-generate";
constexpr char kUsage[] =
    "text from a checkpoint and a prompt (KV cache; deterministic for a seed).\n\n"
    "  aoetron-generate --checkpoint runs/quickstart/checkpoints --prompt \"In the beginning\"";
namespace launch = aoetron::launch;

absl::StatusOr<std::vector<int32_t>> ParseIds(const std::string& text) {
  std::vector<int32_t> ids;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int32_t id = 0;
    if (!absl::SimpleAtoi(part, &id) || id < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--prompt_ids: \"", part, "\" is not a token id"));
    }
    ids.push_back(id);
  }
  return ids;
}

absl::Status CheckOptions(const aoetron::SamplingOptions& options, int64_t max_new_tokens) {
  if (!(options.temperature >= 0)) return absl::InvalidArgumentError("--temperature must be ≥ 0");
  if (options.top_k < 0) return absl::InvalidArgumentError("--top_k must be ≥ 0");
  if (!(options.top_p > 0 && options.top_p <= 1)) {
    return absl::InvalidArgumentError("--top_p must be in (0, 1]");
  }
  if (max_new_tokens < 0) return absl::InvalidArgumentError("--max_new_tokens must be ≥ 0");
  return absl::OkStatus();
}

int Generate(aoetron::parallel::DistributedContext& context,
             const aoetron::config::TrainConfig& config, const std::string& step_directory,
             aoetron::TrainerParallelism& parallelism, const aoetron::SamplingOptions& sampling) {
  static std::ostringstream sink;
  aoetron::TrainerIo io{&sink, &std::cerr};
  aoetron::TrainerOptions options;
  options.resume_from = step_directory;
  absl::StatusOr<std::unique_ptr<aoetron::Trainer>> trainer =
      aoetron::Trainer::Create(config, io, parallelism, options);
  if (!trainer.ok()) return launch::FailRun(context, kProgram, trainer.status());
  aoetron::GptModel& model = (*trainer)->model();
  const int64_t vocab = config.model().vocab_size();

  absl::StatusOr<std::unique_ptr<aoetron::data::BpeTokenizer>> tokenizer =
      aoetron::DatasetTokenizer(config);
  std::vector<int32_t> prompt;
  if (!absl::GetFlag(FLAGS_prompt_ids).empty()) {
    absl::StatusOr<std::vector<int32_t>> ids = ParseIds(absl::GetFlag(FLAGS_prompt_ids));
    if (!ids.ok()) return launch::FailRun(context, kProgram, ids.status());
    prompt = *ids;
  } else if (!tokenizer.ok()) {
    return launch::FailRun(context, kProgram,
                           absl::FailedPreconditionError(absl::StrCat(
                               "--prompt needs the dataset's tokenizer, and ",
                               tokenizer.status().message(), "; give --prompt_ids instead")));
  } else {
    prompt = (*tokenizer)->Encode(absl::GetFlag(FLAGS_prompt));
  }
  for (const int32_t id : prompt) {
    if (id >= vocab) {
      return launch::FailRun(context, kProgram,
                             absl::InvalidArgumentError(absl::StrCat(
                                 "prompt token ", id, " is outside model.vocab_size ", vocab)));
    }
  }
  if (prompt.empty() || static_cast<int64_t>(prompt.size()) >= config.model().seq_len()) {
    return launch::FailRun(
        context, kProgram,
        absl::InvalidArgumentError(absl::StrCat("the prompt has ", prompt.size(),
                                                " tokens; it needs 1 to model.seq_len − 1 (",
                                                config.model().seq_len() - 1, ")")));
  }
  const int32_t end_of_text = tokenizer.ok() ? (*tokenizer)->end_of_text_id() : -1;
  aoetron::ActivationArena arena;
  const std::vector<int32_t> generated = aoetron::GenerateTokens(
      model, prompt, absl::GetFlag(FLAGS_max_new_tokens), sampling, end_of_text, arena);
  if (context.world_rank() != 0) return 0;
  std::string text;
  if (tokenizer.ok()) {
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), generated.begin(), generated.end());
    absl::StatusOr<std::string> decoded = (*tokenizer)->Decode(all);
    if (decoded.ok()) text = *decoded;
  }
  if (absl::GetFlag(FLAGS_json)) {
    aoetron::JsonObjectWriter json;
    json.NumberArray("prompt_ids", std::vector<double>(prompt.begin(), prompt.end()))
        .NumberArray("ids", std::vector<double>(generated.begin(), generated.end()))
        .String("text", text);
    std::cout << json.Finish() << std::endl;
  } else {
    std::cout << (tokenizer.ok() ? text : absl::StrJoin(generated, ",")) << std::endl;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::StatusOr<std::vector<std::string>> parsed = aoetron::launch::ParseProgramCommandLine(
      &argc, argv, "generate_main", kUsage, " (see --help)");
  if (!parsed.ok()) {
    return aoetron::launch::FailBeforeMpi(kProgram, std::string(parsed.status().message()));
  }
  const std::vector<std::string>& overrides = *parsed;
  const aoetron::SamplingOptions sampling{absl::GetFlag(FLAGS_temperature),
                                          absl::GetFlag(FLAGS_top_k), absl::GetFlag(FLAGS_top_p),
                                          absl::GetFlag(FLAGS_seed)};
  if (absl::Status ok = CheckOptions(sampling, absl::GetFlag(FLAGS_max_new_tokens)); !ok.ok()) {
    return launch::FailBeforeMpi(kProgram, std::string(ok.message()));
  }

  return launch::RunOnCheckpoint(
      &argc, &argv, kProgram, absl::GetFlag(FLAGS_checkpoint), absl::GetFlag(FLAGS_config),
      overrides, [&sampling](launch::CheckpointJob& job) {
        return Generate(*job.context, *job.config, job.step_directory, *job.parallelism, sampling);
      });
}
