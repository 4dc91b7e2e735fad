// aoetron-train: trains a model from a config, or measures its throughput (--bench).
//
// Exit status: 0 on success; 1 for a bad command line or config, or a run that stopped on an
// error (the message on stderr names the cause, the field or the step).
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "launcher/bench.h"
#include "launcher/config_loader.h"
#include "launcher/trainer.h"

ABSL_FLAG(std::string, config, "",
          "Training config in protobuf text format (configs/*.textproto). Without it, every "
          "field starts at its default (docs/config.md).");
// Only for --help: every --set is taken out of argv before absl sees it (see ExtractSetFlags),
// because absl's list flags split on commas and a value may contain one.
ABSL_FLAG(std::string, set, "",
          "Override one config field: --set section.field=value (e.g. --set model.n_layers=8 "
          "--set schedule.decay=wsd). Repeatable; applied in order after --config, the last "
          "one for a field wins.");
ABSL_FLAG(bool, bench, false,
          "Measure training throughput instead of training: synthetic data, "
          "--bench_warmup_steps untimed steps, then --bench_steps timed steps; prints one JSON "
          "line (tokens_per_s, step_s, model_flops_per_s, peak_rss_bytes, threads, config, ...).");
ABSL_FLAG(int64_t, bench_steps, 10, "Timed optimizer steps in --bench mode.");
ABSL_FLAG(int64_t, bench_warmup_steps, 2, "Untimed warm-up steps in --bench mode.");
ABSL_FLAG(bool, print_config, false,
          "Print the resolved config (every field, defaults included) as text format and exit.");
ABSL_FLAG(std::string, resume, "",
          "Reserved: resume from a checkpoint directory. Not available in this build.");

namespace {

constexpr char kUsage[] =
    "trains a Mixture-of-Experts (dense, router MoE or Autonomy-of-Experts) GPT model.\n"
    "\n"
    "  aoetron-train --config configs/tiny_aoe.textproto\n"
    "  aoetron-train --config configs/tiny_aoe.textproto --set train.steps=50 --set "
    "optimizer.lr=1e-3\n"
    "  aoetron-train --config configs/bench_aoe_small.textproto --bench\n"
    "  aoetron-train --config configs/tiny_aoe.textproto --print_config\n"
    "\n"
    "Logged steps go to stdout (a progress line on a terminal, JSON lines otherwise; see\n"
    "logging.progress) and as JSON lines to the metrics file (logging.metrics_file; default\n"
    "<checkpoint.dir>/metrics.jsonl, else ./metrics.jsonl). Config fields: docs/config.md;\n"
    "the loop, log fields and FLOP accounting: docs/training.md.";

// Removes every "--set X", "--set=X", "-set X", "-set=X" from argv and returns the X in order.
// `error` is set when a --set has no value.
std::vector<std::string> ExtractSetFlags(int* argc, char** argv, std::string* error) {
  std::vector<std::string> values;
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") {  // everything after is positional: keep as is
      for (; i < *argc; ++i) argv[kept++] = argv[i];
      break;
    }
    if (arg == "--set" || arg == "-set") {
      if (i + 1 >= *argc) {
        *error = "--set needs a value: --set section.field=value";
        break;
      }
      values.push_back(argv[++i]);
    } else if (absl::StartsWith(arg, "--set=") || absl::StartsWith(arg, "-set=")) {
      values.push_back(arg.substr(arg.find('=') + 1));
    } else {
      argv[kept++] = argv[i];
    }
  }
  *argc = kept;
  argv[kept] = nullptr;
  return values;
}

int Fail(const std::string& message) {
  std::cerr << "aoetron-train: " << message << std::endl;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::FlagsUsageConfig usage_config;
  // Show this program's flags under --help (absl's default matches files named after the
  // program, and ours is launcher/train_main.cc).
  usage_config.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "train_main");
  };
  usage_config.contains_helpshort_flags = usage_config.contains_help_flags;
  usage_config.normalize_filename = [](absl::string_view file) {
    const size_t launcher = file.rfind("launcher/");
    return std::string(launcher == absl::string_view::npos ? file : file.substr(launcher));
  };
  absl::SetFlagsUsageConfig(usage_config);
  absl::SetProgramUsageMessage(kUsage);

  std::string set_error;
  const std::vector<std::string> overrides = ExtractSetFlags(&argc, argv, &set_error);
  if (!set_error.empty()) return Fail(set_error);
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    return Fail(absl::StrCat("unexpected argument \"", positional[1],
                             "\"; the config is given with --config FILE (see --help)"));
  }
  if (!absl::GetFlag(FLAGS_resume).empty()) {
    return Fail("--resume is reserved: loading checkpoints is not available in this build");
  }

  absl::StatusOr<aoetron::config::TrainConfig> config =
      aoetron::LoadTrainConfig(absl::GetFlag(FLAGS_config), overrides);
  if (!config.ok()) return Fail(std::string(config.status().message()));
  if (absl::GetFlag(FLAGS_print_config)) {
    std::cout << aoetron::ResolvedConfigText(*config);
    return 0;
  }

  if (absl::GetFlag(FLAGS_bench)) {
    aoetron::BenchOptions options;
    options.warmup_steps = absl::GetFlag(FLAGS_bench_warmup_steps);
    options.timed_steps = absl::GetFlag(FLAGS_bench_steps);
    absl::StatusOr<aoetron::BenchResult> result = aoetron::RunBench(*config, options);
    if (!result.ok()) return Fail(std::string(result.status().message()));
    std::cout << aoetron::BenchResultJson(*result) << std::endl;
    return 0;
  }

  aoetron::TrainerIo io;
  io.out_is_terminal = isatty(STDOUT_FILENO) == 1;
  absl::StatusOr<std::unique_ptr<aoetron::Trainer>> trainer = aoetron::Trainer::Create(*config, io);
  if (!trainer.ok()) return Fail(std::string(trainer.status().message()));
  absl::StatusOr<aoetron::TrainSummary> summary = (*trainer)->Train();
  if (!summary.ok()) return Fail(std::string(summary.status().message()));
  return 0;
}
