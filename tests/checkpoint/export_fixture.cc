// export_fixture: saves a tiny GptModel with the checkpoint library and records what PyTorch
// must reproduce from its export (tests/checkpoint/check_export.py).
//
//   export_fixture --root=DIR --bundle=FILE [--expect=FILE.json] [--ffn=aoe|moe|dense]
//                  [--options]
//
// Builds the model in one process from a TrainConfig, as aoetron-train does (init seed 1,
// init_std 0.2 so routing is decisive), computes GptModel::Forward on a fixed batch, and saves
// step 3 into DIR with CheckpointManager: every parameter as two row boxes where it has ≥ 2 rows
// (so the export must assemble boxes), plus AdamW-like ".adam_m"/".adam_v" state (which the
// export must leave out), and the config text in the TrainingState as the trainer saves it
// (launcher/trainer_state.cc: only the fields the run set), from which the export writes
// config.json. The bundle (core/tensor_bundle.h) holds config.<field> as
// tests/parity/parity_dump.cc writes them, the batch (tokens, targets) and the loss and aux loss
// of Forward; --expect writes the batch and the losses as plain JSON too, for readers that know
// nothing of aoetron's formats (read_export_from_docs.py).
#include <google/protobuf/text_format.h>

#include <cstring>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/arena.h"
#include "core/rng.h"
#include "core/tensor_bundle.h"
#include "launcher/checkpoint/checkpoint_manager.h"
#include "launcher/checkpoint/durable_file.h"
#include "launcher/checkpoint/parameter_checkpoint.h"
#include "launcher/config_conversion.h"
#include "models/gpt_model.h"
#include "parallel/single_process_communicator.h"

namespace aoetron::checkpoint {
namespace {

Tensor ScalarI64(int64_t v) {
  Tensor t = Tensor::Empty({}, DType::kI64);
  *t.data<int64_t>() = v;
  return t;
}

Tensor ScalarF64(double v) {
  Tensor t = Tensor::Empty({}, DType::kF64);
  *t.data<double>() = v;
  return t;
}

Tensor RandomTokens(const std::string& stream, int64_t batch, int64_t seq, int64_t vocab) {
  Tensor t = Tensor::Empty({batch, seq}, DType::kI32);
  for (int64_t i = 0; i < t.numel(); ++i) {
    t.data<int32_t>()[i] = static_cast<int32_t>(UniformIntAt(2, StableHash(stream), i, vocab));
  }
  return t;
}

// {"tokens": [[...], ...], "targets": [[...], ...], "loss": x, "aux_loss": y}, the losses with
// 17 significant digits (exact doubles).
std::string ExpectationJson(const Tensor& tokens, const Tensor& targets, const StepOutputs& out) {
  auto rows = [](const Tensor& ids) {
    std::string text = "[";
    for (int64_t b = 0; b < ids.dim(0); ++b) {
      absl::StrAppend(&text, b ? ", [" : "[");
      for (int64_t t = 0; t < ids.dim(1); ++t) {
        absl::StrAppend(&text, t ? ", " : "", ids.data<int32_t>()[b * ids.dim(1) + t]);
      }
      text += "]";
    }
    return text + "]";
  };
  return absl::StrFormat(
      "{\"tokens\": %s,\n \"targets\": %s,\n \"loss\": %.17g,\n \"aux_loss\": %.17g}\n",
      rows(tokens), rows(targets), out.loss, out.aux_loss);
}

int Main(int argc, char** argv) {
  std::string root, bundle, expect, ffn = "aoe";
  bool options = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--root=", 0) == 0)
      root = arg.substr(7);
    else if (arg.rfind("--bundle=", 0) == 0)
      bundle = arg.substr(9);
    else if (arg.rfind("--expect=", 0) == 0)
      expect = arg.substr(9);
    else if (arg.rfind("--ffn=", 0) == 0)
      ffn = arg.substr(6);
    else if (arg == "--options")
      options = true;
    else {
      std::cerr << "export_fixture: unknown argument " << arg << "\n";
      return 2;
    }
  }
  if (root.empty() || bundle.empty()) {
    std::cerr << "usage: export_fixture --root=DIR --bundle=FILE [--expect=FILE.json] "
                 "[--ffn=aoe|moe|dense] [--options]\n";
    return 2;
  }
  // The run's config as a user writes it: only what differs from the defaults is set.
  config::TrainConfig run;
  config::ModelSection& section = *run.mutable_model();
  section.set_vocab_size(64);
  section.set_d_model(32);
  section.set_n_layers(2);
  section.set_n_heads(4);
  section.set_seq_len(16);
  section.set_d_ffn(48);
  section.set_n_experts(4);
  section.set_top_k(2);
  section.set_d_low(8);
  section.set_init_std(0.2);
  section.set_ffn(ffn == "dense" ? config::ModelSection::dense
                  : ffn == "moe" ? config::ModelSection::moe
                                 : config::ModelSection::aoe);
  // --options: the MoE design-space options whose state an export must carry — above all the
  // expert bias (non-zero here, as after training: an export that drops it or writes zeros
  // selects other experts, and the loss check below fails). Router MoE also gets granularity 2
  // and sigmoid scores.
  if (options) {
    section.set_expert_bias_rate(0.01);
    section.set_n_shared_experts(1);
    section.set_d_shared(16);
    section.set_z_loss_coeff(0.05);
    if (ffn == "moe") {
      section.set_granularity(2);
      section.set_router_score(config::ModelSection::sigmoid);
    }
  }
  // The layers' view (granularity applied: n·G experts of width d_ffn/G, k·G chosen).
  const ModelConfig c = ModelConfigFromConfig(run);
  const int64_t granularity = section.granularity();
  GptModel model(c);
  ParameterSet& params = model.parameters();
  params.Initialize(1);
  for (Parameter& p : params.all()) {
    if (p.trainable) continue;  // the expert bias: spread like trained values
    for (int64_t i = 0; i < p.master.numel(); ++i) {
      p.master.data<float>()[i] = 0.3f * NormalAt(3, StableHash(p.name), i);
    }
  }

  const Tensor tokens = RandomTokens("export.tokens", 2, c.seq_len, c.vocab_size);
  const Tensor targets = RandomTokens("export.targets", 2, c.seq_len, c.vocab_size);
  ActivationArena arena;
  const StepOutputs out = model.Forward(tokens, targets, arena);

  // Optimizer-like state that must not be exported.
  Tensor m = Tensor::Empty({params.num_elements()}, DType::kF32);
  Tensor v = Tensor::Empty({params.num_elements()}, DType::kF32);
  for (int64_t i = 0; i < m.numel(); ++i) {
    m.data<float>()[i] = 1e-3f * static_cast<float>(i % 17);
    v.data<float>()[i] = 1e-6f * static_cast<float>(i % 5);
  }
  absl::StatusOr<parallel::ProcessGrid> grid = parallel::ProcessGrid::Create(1, 0, 1, 1);
  std::vector<SaveItem> whole = ParameterSaveItems(params, *grid, {{".adam_m", m}, {".adam_v", v}});
  std::vector<SaveItem> items;
  for (const SaveItem& item : whole) {
    const Shape& shape = item.box.region.shape;
    if (shape.size() < 1 || shape[0] < 2) {
      items.push_back(item);
      continue;
    }
    const int64_t half = shape[0] / 2;
    for (auto [begin, end] : {std::pair<int64_t, int64_t>{0, half}, {half, shape[0]}}) {
      SaveItem part = item;
      part.box.region.offset[0] += begin;
      part.box.region.shape[0] = end - begin;
      part.values = item.values.Reshape(shape).Rows(begin, end);
      items.push_back(part);
    }
  }
  parallel::SingleProcessCommunicator world;
  absl::StatusOr<std::unique_ptr<CheckpointManager>> manager =
      CheckpointManager::Create({.root = root, .retention = {}, .async = false}, world);
  if (!manager.ok()) {
    std::cerr << manager.status() << "\n";
    return 1;
  }
  pb::TrainingState state;
  state.set_step(3);
  std::string config_text;  // as Trainer::SaveCheckpoint writes it
  google::protobuf::TextFormat::PrintToString(run, &config_text);
  state.set_config_text(config_text);
  if (absl::Status s = (*manager)->Save(3, items, state); !s.ok()) {
    std::cerr << "export_fixture: " << s << "\n";
    return 1;
  }

  NamedTensors record;
  record.emplace_back("config.vocab_size", ScalarI64(c.vocab_size));
  record.emplace_back("config.d_model", ScalarI64(c.d_model));
  record.emplace_back("config.n_layers", ScalarI64(c.n_layers));
  record.emplace_back("config.n_heads", ScalarI64(c.n_heads));
  record.emplace_back("config.seq_len", ScalarI64(c.seq_len));
  record.emplace_back("config.d_ffn", ScalarI64(c.d_ffn));
  record.emplace_back("config.ffn", ScalarI64(static_cast<int64_t>(ffn == "dense" ? 0
                                                                   : ffn == "moe" ? 1
                                                                                  : 2)));
  record.emplace_back("config.n_experts", ScalarI64(c.n_experts / granularity));
  record.emplace_back("config.top_k", ScalarI64(c.top_k / granularity));
  record.emplace_back("config.granularity", ScalarI64(granularity));
  record.emplace_back("config.n_shared_experts", ScalarI64(c.n_shared_experts));
  record.emplace_back("config.d_shared", ScalarI64(c.d_shared));
  record.emplace_back("config.router_score",
                      ScalarI64(c.router_score == RouterScore::kSigmoid ? 1 : 0));
  record.emplace_back("config.z_loss_coeff", ScalarF64(c.z_loss_coeff));
  record.emplace_back("config.expert_bias_rate", ScalarF64(c.expert_bias_rate));
  record.emplace_back("config.d_low", ScalarI64(c.d_low));
  record.emplace_back("config.d_wide", ScalarI64(c.d_wide));
  record.emplace_back("config.aoe_gate", ScalarI64(c.aoe_gate == AoeGateVariant::kPaper ? 0 : 1));
  record.emplace_back("config.aux_loss_coeff", ScalarF64(c.aux_loss_coeff));
  record.emplace_back("config.rope_theta", ScalarF64(c.rope_theta));
  record.emplace_back("config.norm_eps", ScalarF64(c.norm_eps));
  record.emplace_back("config.init_std", ScalarF64(c.init_std));
  record.emplace_back("tokens", tokens);
  record.emplace_back("targets", targets);
  record.emplace_back("loss", ScalarF64(out.loss));
  record.emplace_back("aux_loss", ScalarF64(out.aux_loss));
  if (absl::Status s = WriteTensorBundle(bundle, record); !s.ok()) {
    std::cerr << "export_fixture: " << s << "\n";
    return 1;
  }
  if (!expect.empty()) {
    if (absl::Status s = WriteFileSynced(expect, ExpectationJson(tokens, targets, out)); !s.ok()) {
      std::cerr << "export_fixture: " << s << "\n";
      return 1;
    }
  }
  std::cout << "export_fixture: " << ffn << " model, " << params.size() << " parameters saved in "
            << items.size() << " boxes; loss " << out.loss << ", aux loss " << out.aux_loss << "\n";
  return 0;
}

}  // namespace
}  // namespace aoetron::checkpoint

int main(int argc, char** argv) { return aoetron::checkpoint::Main(argc, argv); }
