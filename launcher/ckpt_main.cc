// aoetron-ckpt: look into, check and export sharded checkpoints (docs/checkpoint.md).
//
//   aoetron-ckpt inspect PATH [--config]    step, training state, layout, files, every tensor
//                                           with its global shape and saved boxes, sizes;
//                                           --config: the effective training config, every
//                                           field with defaults filled in, "# set" marking
//                                           what the run set
//   aoetron-ckpt verify PATH                every CRC-32C piece of every record; coverage and
//                                           disjointness of every tensor's boxes (exit 1 on
//                                           any problem, each named by file and tensor)
//   aoetron-ckpt export PATH --out=DIR [--max_shard_size=5GiB] [--all_kinds] [--dtype=f32|bf16]
//                          [--train_config=FILE]
//                                           full tensors as safetensors + index JSON +
//                                           config.json (launcher/export_config.h) from the
//                                           checkpoint's config, or FILE for one saved without
//
// PATH is a step directory (<root>/step_<N>) or a checkpoint root, which means its newest
// complete checkpoint (as `--resume auto` would pick it; skipped ones are reported).
// Exit status: 0 success, 1 a problem with the checkpoint, 2 bad usage.
#include <algorithm>
#include <cstdint>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "launcher/checkpoint/checkpoint_format.h"
#include "launcher/checkpoint/checkpoint_reader.h"
#include "launcher/checkpoint/safetensors_export.h"
#include "launcher/config_conversion.h"
#include "launcher/config_loader.h"
#include "launcher/export_config.h"

ABSL_FLAG(std::string, out, "", "export: output directory");
ABSL_FLAG(std::string, max_shard_size, "5GiB",
          "export: largest safetensors file (bytes; suffixes KiB, MiB, GiB, KB, MB, GB)");
ABSL_FLAG(bool, all_kinds, false, "export: also optimizer state and other tensors");
ABSL_FLAG(std::string, dtype, "f32",
          "export: f32 (the saved master weights) or bf16 (rounded to nearest even)");
ABSL_FLAG(bool, config, false,
          "inspect: print the effective config (every field, defaults filled in, '# set' on "
          "the fields the run set)");
ABSL_FLAG(std::string, train_config, "",
          "export: the run's config file (text format), for a checkpoint saved without its "
          "config; otherwise the checkpoint's own config is used");

namespace aoetron::checkpoint {
namespace {

constexpr char kUsage[] = R"(aoetron-ckpt: inspect, verify and export sharded checkpoints.
  aoetron-ckpt inspect PATH [--config]
  aoetron-ckpt verify PATH
  aoetron-ckpt export PATH --out=DIR [--max_shard_size=5GiB] [--all_kinds] [--dtype=f32|bf16]
                           [--train_config=FILE]
PATH: a step directory (<root>/step_<N>) or a checkpoint root (its newest complete checkpoint).)";

std::string Bytes(uint64_t n) {
  if (n >= (uint64_t{1} << 30)) return absl::StrFormat("%.2f GiB", n / double(uint64_t{1} << 30));
  if (n >= (uint64_t{1} << 20)) return absl::StrFormat("%.2f MiB", n / double(uint64_t{1} << 20));
  if (n >= (uint64_t{1} << 10)) return absl::StrFormat("%.2f KiB", n / 1024.0);
  return absl::StrCat(n, " B");
}

const char* KindName(pb::TensorKind kind) {
  switch (kind) {
    case pb::KIND_PARAMETER:
      return "param";
    case pb::KIND_OPTIMIZER_STATE:
      return "optim";
    case pb::KIND_OTHER:
      return "other";
    default:
      return "?";
  }
}

bool ParseSize(const std::string& text, uint64_t* out) {
  static const std::vector<std::pair<std::string, uint64_t>> kSuffixes = {
      {"KiB", uint64_t{1} << 10},
      {"MiB", uint64_t{1} << 20},
      {"GiB", uint64_t{1} << 30},
      {"KB", 1000},
      {"MB", 1000000},
      {"GB", 1000000000},
      {"B", 1}};
  for (const auto& [suffix, scale] : kSuffixes) {
    if (text.size() > suffix.size() && text.ends_with(suffix)) {
      uint64_t n = 0;
      if (!absl::SimpleAtoi(text.substr(0, text.size() - suffix.size()), &n)) return false;
      *out = n * scale;
      return *out > 0;
    }
  }
  return absl::SimpleAtoi(text, out) && *out > 0;
}

absl::StatusOr<CheckpointReader> OpenPath(const std::string& path) {
  std::vector<std::string> warnings;
  // Choosing the newest complete checkpoint here checks structure only; `verify` reads the data.
  absl::StatusOr<std::string> directory =
      ResolveCheckpointPath(path, &warnings, FindOptions{.verify_checksums = false});
  for (const std::string& w : warnings) std::cerr << "aoetron-ckpt: " << w << "\n";
  if (!directory.ok()) return directory.status();
  return CheckpointReader::Open(*directory);
}

// The run's config as saved in the checkpoint (text format, only the fields the run set), parsed:
// fields it does not set read as their defaults, which is the config the run used. nullopt when
// the checkpoint holds none.
absl::StatusOr<std::optional<config::TrainConfig>> SavedConfig(const CheckpointReader& reader) {
  const std::string& text = reader.manifest().state().config_text();
  if (text.empty()) return std::nullopt;
  absl::StatusOr<config::TrainConfig> parsed =
      ParseTrainConfigText(text, reader.directory() + " (saved config)");
  if (!parsed.ok()) return parsed.status();
  return std::optional<config::TrainConfig>(*std::move(parsed));
}

void PrintEffectiveConfig(const CheckpointReader& reader) {
  absl::StatusOr<std::optional<config::TrainConfig>> saved = SavedConfig(reader);
  if (!saved.ok()) {
    std::cout << "  the saved config does not parse (" << saved.status().message()
              << "); as saved:\n"
              << reader.manifest().state().config_text() << "\n";
    return;
  }
  if (!saved->has_value()) {
    std::cout << "  (the checkpoint holds no config)\n";
    return;
  }
  std::cout << "# effective config: every field, defaults filled in; \"# set\": set by the run\n"
            << AnnotatedResolvedConfigText(**saved);
}

int Inspect(const CheckpointReader& reader) {
  const pb::Manifest& m = reader.manifest();
  const pb::TrainingState& s = m.state();
  std::cout << "checkpoint " << reader.directory() << "\n";
  std::cout << "  format " << m.format_version() << " (" << m.writer() << "), created unix time "
            << m.created_unix_seconds() << ", CRC-32C pieces of " << Bytes(m.chunk_bytes()) << "\n";
  std::cout << "  step " << m.step() << ", consumed samples " << s.consumed_samples()
            << ", schedule step " << s.schedule_step() << ", data position " << s.data_position()
            << ", seed " << s.seed() << "\n";
  std::cout << "  layout: world " << s.layout().world_size() << ", tp " << s.layout().tp()
            << ", ep " << s.layout().ep() << ", dp " << s.layout().dp() << ", zero1 "
            << (s.layout().zero1() ? "on" : "off") << "\n";
  for (const auto& [key, value] : s.counters())
    std::cout << "  counter " << key << " = " << value << "\n";
  for (const auto& [key, value] : s.blobs()) {
    std::cout << "  blob " << key << ": " << Bytes(value.size()) << "\n";
  }
  std::cout << "  config: " << s.config_text().size() << " bytes"
            << (absl::GetFlag(FLAGS_config) ? "" : " (--config prints it)") << "\n";
  if (absl::GetFlag(FLAGS_config)) PrintEffectiveConfig(reader);
  for (const pb::RankState& r : m.rank_states()) {
    if (r.blobs().empty()) continue;
    std::cout << "  rank " << r.rank() << " state:";
    for (const auto& [key, value] : r.blobs())
      std::cout << " " << key << " (" << Bytes(value.size()) << ")";
    std::cout << "\n";
  }
  uint64_t file_bytes = 0;
  for (const pb::FileRecord& f : m.files()) file_bytes += f.size();
  std::cout << "files: " << m.files_size() << ", " << Bytes(file_bytes) << "\n";
  for (const pb::FileRecord& f : m.files()) {
    std::cout << "  " << f.name() << "  " << Bytes(f.size()) << "  (rank " << f.writer_rank()
              << ")\n";
  }
  std::map<pb::TensorKind, std::pair<int, uint64_t>> by_kind;
  for (const auto& [name, t] : reader.tensors()) {
    auto& [count, bytes] = by_kind[t.kind];
    ++count;
    bytes += NumElements(t.global_shape) * SizeOf(t.dtype);
  }
  std::cout << "tensors: " << reader.tensors().size();
  for (const auto& [kind, cb] : by_kind) {
    std::cout << ", " << cb.first << " " << KindName(kind) << " (" << Bytes(cb.second) << ")";
  }
  std::cout << "\n";
  std::vector<const SavedTensor*> ordered;
  for (const auto& [name, t] : reader.tensors()) ordered.push_back(&t);
  std::sort(ordered.begin(), ordered.end(), [](const SavedTensor* a, const SavedTensor* b) {
    return NaturalLess(a->name, b->name);
  });
  for (const SavedTensor* t : ordered) {
    std::cout << "  " << t->name << "  " << KindName(t->kind) << " " << DTypeName(t->dtype) << " "
              << ShapeToString(t->global_shape) << "  "
              << Bytes(NumElements(t->global_shape) * SizeOf(t->dtype)) << "  boxes:";
    for (int r : t->records) {
      const pb::TensorRecord& rec = m.tensors(r);
      std::cout << " " << RegionToString(RecordRegion(rec)) << "@rank" << rec.writer_rank();
    }
    std::cout << "\n";
  }
  return 0;
}

int Verify(const CheckpointReader& reader) {
  uint64_t bytes = 0;
  const std::vector<std::string> problems = reader.Verify(&bytes);
  for (const std::string& p : problems) std::cout << "PROBLEM: " << p << "\n";
  if (!problems.empty()) {
    std::cout << reader.directory() << ": " << problems.size() << " problem(s)\n";
    return 1;
  }
  std::cout << reader.directory() << ": OK: step " << reader.step() << ", "
            << reader.tensors().size() << " tensors, every element covered exactly once, "
            << reader.manifest().tensors_size() << " records, " << Bytes(bytes)
            << " checked against their CRC-32C\n";
  return 0;
}

int Export(const CheckpointReader& reader) {
  ExportOptions options;
  if (!ParseSize(absl::GetFlag(FLAGS_max_shard_size), &options.max_shard_bytes)) {
    std::cerr << "aoetron-ckpt: --max_shard_size=" << absl::GetFlag(FLAGS_max_shard_size)
              << " is not a positive size\n";
    return 2;
  }
  options.include_all_kinds = absl::GetFlag(FLAGS_all_kinds);
  const std::string dtype = absl::GetFlag(FLAGS_dtype);
  if (dtype != "f32" && dtype != "bf16") {
    std::cerr << "aoetron-ckpt: --dtype=" << dtype << " must be f32 or bf16\n";
    return 2;
  }
  options.float_dtype = dtype == "bf16" ? DType::kBF16 : DType::kF32;
  if (absl::GetFlag(FLAGS_out).empty()) {
    std::cerr << "aoetron-ckpt: export needs --out=DIR\n";
    return 2;
  }
  // config.json: from --train_config, else the checkpoint's own config. It must describe exactly
  // the checkpoint's parameters; a checkpoint without a config exports weights only.
  std::optional<config::TrainConfig> run_config;
  if (!absl::GetFlag(FLAGS_train_config).empty()) {
    absl::StatusOr<config::TrainConfig> file =
        ReadTrainConfigFile(absl::GetFlag(FLAGS_train_config));
    if (!file.ok()) {
      std::cerr << "aoetron-ckpt: " << file.status().message() << "\n";
      return 2;
    }
    run_config = *std::move(file);
  } else {
    absl::StatusOr<std::optional<config::TrainConfig>> saved = SavedConfig(reader);
    if (!saved.ok()) {
      std::cerr << "aoetron-ckpt: " << saved.status().message() << "\n";
      return 1;
    }
    run_config = *std::move(saved);
  }
  if (run_config.has_value()) {
    std::map<std::string, Shape> parameters;
    for (const auto& [name, t] : reader.tensors()) {
      if (t.kind == pb::KIND_PARAMETER) parameters[name] = t.global_shape;
    }
    if (absl::Status s = CheckParametersMatchConfig(ModelConfigFromConfig(*run_config), parameters);
        !s.ok()) {
      std::cerr << "aoetron-ckpt: " << s.message() << "\n";
      return 1;
    }
    options.config_json = ExportConfigJson(*run_config, reader.step(), options.float_dtype);
  } else {
    std::cerr << "aoetron-ckpt: the checkpoint holds no training config, so config.json is not "
                 "written (--train_config=FILE supplies the run's config)\n";
  }
  absl::StatusOr<ExportSummary> summary =
      ExportSafetensors(reader, absl::GetFlag(FLAGS_out), options);
  if (!summary.ok()) {
    std::cerr << "aoetron-ckpt: " << summary.status() << "\n";
    return 1;
  }
  std::cout << "exported " << summary->tensors << " tensors (" << Bytes(summary->total_bytes)
            << ") of step " << reader.step() << ":\n";
  for (const std::string& f : summary->files) std::cout << "  " << f << "\n";
  return 0;
}

}  // namespace
}  // namespace aoetron::checkpoint

int main(int argc, char** argv) {
  using namespace aoetron::checkpoint;
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() != 3) {
    std::cerr << kUsage << "\n";
    return 2;
  }
  const std::string command = positional[1];
  if (command != "inspect" && command != "verify" && command != "export") {
    std::cerr << "aoetron-ckpt: unknown command '" << command << "'\n" << kUsage << "\n";
    return 2;
  }
  absl::StatusOr<CheckpointReader> reader = OpenPath(positional[2]);
  if (!reader.ok()) {
    std::cerr << "aoetron-ckpt: " << reader.status() << "\n";
    return 1;
  }
  if (command == "inspect") return Inspect(*reader);
  if (command == "verify") return Verify(*reader);
  return Export(*reader);
}
