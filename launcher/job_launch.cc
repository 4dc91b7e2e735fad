#include "launcher/job_launch.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/device_transfer.h"
#include "launcher/checkpoint/checkpoint_manager.h"
#include "launcher/checkpoint/checkpoint_reader.h"
#include "launcher/config_loader.h"
#include "launcher/config_validation.h"
#include "launcher/node_placement.h"
#include "parallel/abort.h"
#include "parallel/process_grid.h"
#include "parallel/process_groups.h"

namespace aoetron::launch {

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

absl::StatusOr<std::vector<std::string>> ParseProgramCommandLine(
    int* argc, char** argv, const std::string& main_file, const char* usage,
    const std::string& positional_hint) {
  absl::FlagsUsageConfig usage_config;
  // absl's default lists the flags of files named after the program; ours live in <x>_main.cc.
  usage_config.contains_help_flags = [main_file](absl::string_view file) {
    return absl::StrContains(file, main_file);
  };
  usage_config.contains_helpshort_flags = usage_config.contains_help_flags;
  usage_config.normalize_filename = [](absl::string_view file) {
    const size_t launcher = file.rfind("launcher/");
    return std::string(launcher == absl::string_view::npos ? file : file.substr(launcher));
  };
  absl::SetFlagsUsageConfig(usage_config);
  absl::SetProgramUsageMessage(usage);
  std::string set_error;
  std::vector<std::string> overrides = ExtractSetFlags(argc, argv, &set_error);
  if (!set_error.empty()) return absl::InvalidArgumentError(set_error);
  const std::vector<char*> positional = absl::ParseCommandLine(*argc, argv);
  if (positional.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument \"", positional[1], "\"", positional_hint));
  }
  return overrides;
}

int LauncherRank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"}) {
    if (const char* value = std::getenv(name); value != nullptr && *value != '\0') {
      return std::atoi(value);
    }
  }
  return 0;
}

int LauncherWorldSize() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"}) {
    if (const char* value = std::getenv(name); value != nullptr && *value != '\0') {
      return std::max(1, std::atoi(value));
    }
  }
  return 1;
}

void LetRankZeroExitFirst(int rank) {
  if (rank != 0) std::this_thread::sleep_for(std::chrono::seconds(1));
}

int FailBeforeMpi(const std::string& program, const std::string& message) {
  if (LauncherRank() == 0) std::cerr << program << ": " << message << std::endl;
  LetRankZeroExitFirst(LauncherRank());
  return 1;
}

int FailRun(parallel::DistributedContext& context, const std::string& program,
            const absl::Status& status) {
  if (context.world_size() > 1) parallel::AbortAll(status);
  std::cerr << program << ": " << status.message() << std::endl;
  return 1;
}

absl::StatusOr<std::string> ResolveCheckpoint(parallel::DistributedContext& context,
                                              const std::string& program,
                                              const std::string& checkpoint_dir,
                                              const std::string& flag) {
  if (flag.empty()) return std::string();
  std::string root = flag;
  if (flag == "auto") {
    if (checkpoint_dir.empty()) {
      return absl::InvalidArgumentError("--resume auto needs checkpoint.dir");
    }
    root = checkpoint_dir;
  } else if (access((flag + "/COMMITTED").c_str(), F_OK) == 0) {
    return flag;
  }
  std::vector<std::string> warnings;
  absl::StatusOr<std::string> latest =
      checkpoint::AgreeOnLatestComplete(context.world(), root, &warnings);
  if (context.world_rank() == 0) {
    for (const std::string& warning : warnings) {
      std::cerr << program << ": note: " << warning << std::endl;
    }
  }
  if (!latest.ok() && flag == "auto" && absl::IsNotFound(latest.status())) {
    if (context.world_rank() == 0) {
      std::cerr << program << ": note: --resume auto: no complete checkpoint under " << root
                << "; starting fresh" << std::endl;
    }
    return std::string();
  }
  return latest;
}

absl::StatusOr<config::TrainConfig> ConfigForCheckpoint(const std::string& step_directory,
                                                        const std::string& config_path,
                                                        const std::vector<std::string>& overrides) {
  config::TrainConfig config;
  if (!config_path.empty()) {
    absl::StatusOr<config::TrainConfig> read = ReadTrainConfigFile(config_path);
    if (!read.ok()) return read.status();
    config = *read;
  } else {
    absl::StatusOr<checkpoint::CheckpointReader> reader =
        checkpoint::CheckpointReader::Open(step_directory);
    if (!reader.ok()) return reader.status();
    absl::StatusOr<config::TrainConfig> parsed =
        ParseTrainConfigText(reader->state().config_text(), step_directory + " (its saved config)");
    if (!parsed.ok()) return parsed.status();
    config = *parsed;
  }
  // Any layout may load the checkpoint: one process by default, whatever layout saved it.
  config.mutable_parallel()->set_tp(1);
  config.mutable_parallel()->set_ep(1);
  config.mutable_parallel()->set_zero1(false);
  config.mutable_checkpoint()->set_dir("");
  // A saved config may carry the accumulation its training layout derived from the global batch
  // (configs written by older ResolvedConfigText did); with a global batch, let it be derived
  // again for this layout.
  if (config.train().global_batch_size() > 0) config.mutable_train()->clear_grad_accum_steps();
  if (config.train().eval_interval() <= 0) config.mutable_train()->set_eval_interval(1);
  for (const std::string& assignment : overrides) {
    if (absl::Status applied = ApplyConfigOverride(assignment, &config); !applied.ok()) {
      return applied;
    }
  }
  return config;
}

int RunWithProcessGroups(parallel::DistributedContext& context, const config::TrainConfig& config,
                         const std::string& program,
                         const std::function<int(TrainerParallelism&)>& work) {
  // Checks every rank makes alike, so rank 0 alone reports and all leave cleanly.
  absl::Status layout = ValidateTrainConfig(config, context.world_size());
  // parallel.device before any group exists: NCCL binds each group to the current GPU, which
  // must already be this rank's (local_rank).
  if (layout.ok()) {
    layout = ValidateDevice(config, context.local_size(), CudaBackendBuilt(), CudaDeviceCount());
  }
  if (layout.ok()) {
    const Device device = DeviceFromConfig(config, context.local_rank());
    if (device.is_cuda()) SetCudaDevice(device.index);
  }
  absl::StatusOr<parallel::ProcessGrid> grid = absl::UnknownError("");
  if (layout.ok()) {
    grid = parallel::ProcessGrid::Create(context.world_size(), context.world_rank(),
                                         static_cast<int>(config.parallel().tp()),
                                         static_cast<int>(config.parallel().ep()));
    layout = grid.status();
  }
  if (!layout.ok()) {
    if (context.world_rank() == 0) std::cerr << program << ": " << layout.message() << std::endl;
    context.world().Barrier();  // rank 0 has printed
    LetRankZeroExitFirst(context.world_rank());
    return 1;
  }
  // A CUDA run's device tensors travel over NCCL; host metadata stays on MPI (process_groups.h).
  const parallel::CollectiveBackend backend =
      config.parallel().device() == config::ParallelSection::cuda
          ? parallel::CollectiveBackend::kNccl
          : parallel::CollectiveBackend::kHost;
  absl::StatusOr<parallel::ProcessGroups> groups =
      parallel::CreateProcessGroups(*grid, context.world(), backend);
  if (!groups.ok()) return FailRun(context, program, groups.status());
  // Where the ranks run (one collective), said on jobs of more than one node.
  if (context.world_size() > 1) {
    const NodePlacement placement = GatherNodePlacement(context.world(), context.hostname());
    if (context.world_rank() == 0 && placement.nodes.size() > 1) {
      std::cerr << program << ": " << DescribePlacement(placement, *grid) << std::endl;
      if (grid->tp_size() > 1 &&
          !GroupsInsideNodes(placement, *grid, parallel::GroupKind::kTensorParallel)) {
        std::cerr << program
                  << ": note: tensor-parallel groups cross nodes, so every layer's all-reduces "
                     "go over the network; give each node a multiple of parallel.tp ranks "
                     "(docs/multinode.md)"
                  << std::endl;
      }
    }
  }
  TrainerParallelism parallelism;
  parallelism.groups = &*groups;
  parallelism.world = &context.world();
  parallelism.watchdog = &context.watchdog();
  parallelism.local_rank = context.local_rank();
  parallelism.local_size = context.local_size();
  return work(parallelism);
}

int RunOnCheckpoint(int* argc, char*** argv, const std::string& program,
                    const std::string& checkpoint, const std::string& config_path,
                    const std::vector<std::string>& overrides,
                    const std::function<int(CheckpointJob&)>& work) {
  if (checkpoint.empty()) return FailBeforeMpi(program, "--checkpoint is required (see --help)");
  absl::StatusOr<parallel::DistributedContext> context =
      parallel::InitializeDistributed(argc, argv, {});
  if (!context.ok()) return FailBeforeMpi(program, std::string(context.status().message()));
  int status = 1;
  absl::StatusOr<std::string> step_directory = ResolveCheckpoint(*context, program, "", checkpoint);
  absl::StatusOr<config::TrainConfig> config =
      step_directory.ok() ? ConfigForCheckpoint(*step_directory, config_path, overrides)
                          : step_directory.status();
  if (!config.ok()) {
    if (context->world_rank() == 0) {
      std::cerr << program << ": " << config.status().message() << std::endl;
    }
    context->world().Barrier();
    LetRankZeroExitFirst(context->world_rank());
  } else {
    status = RunWithProcessGroups(*context, *config, program, [&](TrainerParallelism& parallelism) {
      CheckpointJob job{&*context, &*config, *step_directory, &parallelism};
      return work(job);
    });
  }
  const bool finalized = context->Finalize().ok();
  return status != 0 ? status : (finalized ? 0 : 1);
}

}  // namespace aoetron::launch
