// parity_dump: runs aoetron's GptModel on a tiny configuration and writes everything a
// PyTorch re-computation needs to check it (tests/parity/check_parity.py) into one tensor
// bundle (core/tensor_bundle.h):
//
//   config.<field>            the ModelConfig (i64 / f64 scalars; config.ffn 0 dense, 1 moe,
//                             2 aoe; config.aoe_gate 0 paper, 1 release; config.dtype 0 f32,
//                             1 f64; config.resolved_d_wide as the C++ resolved it)
//   init.<param>              every parameter after Initialize(seed)
//   decay.<param>             i64 scalar, 1 if AdamW decays it (Parameter::weight_decay)
//   tokens, targets           i32 [B, T], the batch of the first ForwardBackward
//   loss, aux_loss            f64 scalars of that ForwardBackward (loss_scale 1; aux_loss is
//                             every layer's aux loss plus z-loss)
//   layer<l>.tokens_per_expert, layer<l>.aux_loss, layer<l>.z_loss   per-layer statistics
//   config.{n_experts,top_k,granularity,d_expert}   as the USER gives them (the model runs
//                             n·G experts, k·G chosen, of width d_expert or d_ffn/G)
//   grad.<param>              every gradient after it
//   adamw.{lr,beta1,beta2,eps,weight_decay,steps}   the optimizer run below
//   step<s>.{tokens,targets,loss,aux_loss}, step<s>.layer<l>.tokens_per_expert,
//   step<s>.grad.<param>, step<s>.param.<param>
//                             for s = 1..steps: ZeroGrads → ForwardBackward on that step's
//                             batch → AdamWOptimizer::Step(lr) (no clipping) →
//                             UpdateExpertBiases (the bias rule, when on); the gradients
//                             the step used and the parameters after it. Step 1 uses the first
//                             batch.
//
// The AdamW steps run only for --dtype=f32 (the optimizer keeps f32 moments); --dtype=f64 checks
// forward and backward alone, where parity can be held to near f64 rounding.
//
// Tokens and targets come from core/rng.h (UniformIntAt, one stream per step), so a run is a
// pure function of its flags.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/arena.h"
#include "core/ops/float_visit.h"
#include "core/rng.h"
#include "core/tensor_bundle.h"
#include "launcher/adamw_optimizer.h"
#include "models/gpt_model.h"

namespace aoetron {
namespace {

constexpr char kUsage[] = R"(usage: parity_dump --out=FILE [flags]
  --ffn=dense|moe|aoe   --aoe_gate=paper|release   --dtype=f32|f64
  --vocab=64 --d_model=32 --n_layers=2 --n_heads=4 --seq=16 --batch=2 --d_ffn=48
  --n_experts=4 --top_k=2 --d_low=8 --d_wide=0 --aux=0.01 --init_std=0.02
  --rope_theta=10000 --norm_eps=1e-5
  --seed=1 (parameters)  --data_seed=2 (tokens)  --lr=0.01 --steps=3 (f32 only)
  --adam_eps=1e-8 (AdamW's ε; the other hyperparameters are AdamWHyperParams' defaults)
)";

struct Flags {
  std::map<std::string, std::string> values;

  // Accepts --name=value only; unknown names are an error (a typo must not silently fall back
  // to a default and test something else).
  bool Parse(int argc, char** argv, const std::vector<std::string>& known) {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      const size_t eq = arg.find('=');
      if (arg.rfind("--", 0) != 0 || eq == std::string::npos) {
        std::cerr << "parity_dump: expected --name=value, got '" << arg << "'\n" << kUsage;
        return false;
      }
      const std::string name = arg.substr(2, eq - 2);
      bool ok = false;
      for (const std::string& k : known) ok = ok || k == name;
      if (!ok) {
        std::cerr << "parity_dump: unknown flag --" << name << "\n" << kUsage;
        return false;
      }
      values[name] = arg.substr(eq + 1);
    }
    return true;
  }
  std::string Str(const std::string& name, const std::string& fallback) const {
    auto it = values.find(name);
    return it == values.end() ? fallback : it->second;
  }
  int64_t Int(const std::string& name, int64_t fallback) const {
    int64_t v = fallback;
    auto it = values.find(name);
    if (it != values.end() && !absl::SimpleAtoi(it->second, &v)) {
      std::cerr << "parity_dump: --" << name << " is not an integer: " << it->second << "\n";
      std::exit(2);
    }
    return v;
  }
  double Real(const std::string& name, double fallback) const {
    double v = fallback;
    auto it = values.find(name);
    if (it != values.end() && !absl::SimpleAtod(it->second, &v)) {
      std::cerr << "parity_dump: --" << name << " is not a number: " << it->second << "\n";
      std::exit(2);
    }
    return v;
  }
};

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

Tensor VectorI64(const std::vector<int64_t>& v) {
  Tensor t = Tensor::Empty({static_cast<int64_t>(v.size())}, DType::kI64);
  if (!v.empty()) std::memcpy(t.raw_data(), v.data(), v.size() * sizeof(int64_t));
  return t;
}

// Parameter values and gradients are views into flat buffers that later steps overwrite.
Tensor Copy(const Tensor& t) {
  Tensor c = Tensor::Empty(t.shape(), t.dtype());
  if (t.nbytes() > 0) std::memcpy(c.raw_data(), t.raw_data(), t.nbytes());
  return c;
}

// One batch: token ids uniform over the vocabulary, one counter stream per (step, role).
Tensor RandomTokens(uint64_t seed, const std::string& stream, int64_t batch, int64_t seq,
                    int64_t vocab) {
  Tensor t = Tensor::Empty({batch, seq}, DType::kI32);
  const uint64_t key = StableHash(stream);
  for (int64_t i = 0; i < t.numel(); ++i) {
    t.data<int32_t>()[i] = static_cast<int32_t>(UniformIntAt(seed, key, i, vocab));
  }
  return t;
}

void AddStepStats(NamedTensors& out, const std::string& prefix, const StepOutputs& step) {
  out.emplace_back(prefix + "loss", ScalarF64(step.loss));
  out.emplace_back(prefix + "aux_loss", ScalarF64(step.aux_loss));
  for (size_t l = 0; l < step.layer_stats.size(); ++l) {
    const std::string layer = absl::StrCat(prefix, "layer", l, ".");
    out.emplace_back(layer + "tokens_per_expert", VectorI64(step.layer_stats[l].tokens_per_expert));
    out.emplace_back(layer + "aux_loss", ScalarF64(step.layer_stats[l].aux_loss));
    out.emplace_back(layer + "z_loss", ScalarF64(step.layer_stats[l].z_loss));
  }
}

int Main(int argc, char** argv) {
  Flags flags;
  if (!flags.Parse(
          argc, argv,
          {"out",         "ffn",      "aoe_gate",  "dtype",    "vocab",        "d_model",
           "n_layers",    "n_heads",  "seq",       "batch",    "d_ffn",        "n_experts",
           "top_k",       "d_low",    "d_wide",    "aux",      "init_std",     "rope_theta",
           "norm_eps",    "seed",     "data_seed", "lr",       "steps",        "adam_eps",
           "granularity", "d_expert", "shared",    "d_shared", "router_score", "z_loss",
           "bias_rate",   "bias_std"})) {
    return 2;
  }
  const std::string out_path = flags.Str("out", "");
  if (out_path.empty()) {
    std::cerr << "parity_dump: --out is required\n" << kUsage;
    return 2;
  }

  ModelConfig c;
  c.vocab_size = flags.Int("vocab", 64);
  c.d_model = flags.Int("d_model", 32);
  c.n_layers = flags.Int("n_layers", 2);
  c.n_heads = flags.Int("n_heads", 4);
  c.seq_len = flags.Int("seq", 16);
  c.d_ffn = flags.Int("d_ffn", 48);
  // The user's n, k and granularity G go into the bundle; the model sees n·G experts, k·G chosen,
  // each of width d_ffn / G unless --d_expert (as launcher/config_conversion.cc resolves them).
  const int64_t granularity = flags.Int("granularity", 1);
  const int64_t user_experts = flags.Int("n_experts", 4), user_top_k = flags.Int("top_k", 2);
  const int64_t user_d_expert = flags.Int("d_expert", 0);
  c.n_experts = user_experts * granularity;
  c.top_k = user_top_k * granularity;
  c.d_expert = user_d_expert > 0 ? user_d_expert : flags.Int("d_ffn", 48) / granularity;
  c.n_shared_experts = flags.Int("shared", 0);
  c.d_shared = flags.Int("d_shared", 0);
  c.z_loss_coeff = flags.Real("z_loss", 0.0);
  c.expert_bias_rate = flags.Real("bias_rate", 0.0);
  const std::string router_score = flags.Str("router_score", "softmax");
  if (router_score != "softmax" && router_score != "sigmoid") {
    std::cerr << "parity_dump: --router_score must be softmax or sigmoid (got " << router_score
              << ")\n";
    return 2;
  }
  c.router_score = router_score == "sigmoid" ? RouterScore::kSigmoid : RouterScore::kSoftmax;
  c.d_low = flags.Int("d_low", 8);
  c.d_wide = flags.Int("d_wide", 0);
  c.aux_loss_coeff = flags.Real("aux", 0.01);
  c.init_std = flags.Real("init_std", 0.02);
  c.rope_theta = flags.Real("rope_theta", 10000.0);
  c.norm_eps = flags.Real("norm_eps", 1e-5);
  const std::string ffn = flags.Str("ffn", "aoe");
  int64_t ffn_code = 0;
  if (ffn == "dense") {
    c.ffn = FfnKind::kDense;
    ffn_code = 0;
  } else if (ffn == "moe") {
    c.ffn = FfnKind::kRouterMoe;
    ffn_code = 1;
  } else if (ffn == "aoe") {
    c.ffn = FfnKind::kAoe;
    ffn_code = 2;
  } else {
    std::cerr << "parity_dump: --ffn must be dense, moe or aoe (got " << ffn << ")\n";
    return 2;
  }
  const std::string gate = flags.Str("aoe_gate", "paper");
  if (gate != "paper" && gate != "release") {
    std::cerr << "parity_dump: --aoe_gate must be paper or release (got " << gate << ")\n";
    return 2;
  }
  c.aoe_gate = gate == "paper" ? AoeGateVariant::kPaper : AoeGateVariant::kRelease;
  const std::string dtype_name = flags.Str("dtype", "f32");
  if (dtype_name != "f32" && dtype_name != "f64") {
    std::cerr << "parity_dump: --dtype must be f32 or f64 (got " << dtype_name << ")\n";
    return 2;
  }
  const DType dtype = dtype_name == "f32" ? DType::kF32 : DType::kF64;
  if (absl::Status s = ValidateModelConfig(c); !s.ok()) {
    std::cerr << "parity_dump: " << s.message() << "\n";
    return 2;
  }
  const int64_t batch = flags.Int("batch", 2);
  const uint64_t seed = static_cast<uint64_t>(flags.Int("seed", 1));
  const uint64_t data_seed = static_cast<uint64_t>(flags.Int("data_seed", 2));
  const double lr = flags.Real("lr", 0.01);
  const int64_t steps = dtype == DType::kF32 ? flags.Int("steps", 3) : 0;

  NamedTensors out;
  out.emplace_back("config.vocab_size", ScalarI64(c.vocab_size));
  out.emplace_back("config.d_model", ScalarI64(c.d_model));
  out.emplace_back("config.n_layers", ScalarI64(c.n_layers));
  out.emplace_back("config.n_heads", ScalarI64(c.n_heads));
  out.emplace_back("config.seq_len", ScalarI64(c.seq_len));
  out.emplace_back("config.d_ffn", ScalarI64(c.d_ffn));
  out.emplace_back("config.ffn", ScalarI64(ffn_code));
  out.emplace_back("config.n_experts", ScalarI64(user_experts));
  out.emplace_back("config.top_k", ScalarI64(user_top_k));
  out.emplace_back("config.granularity", ScalarI64(granularity));
  out.emplace_back("config.d_expert", ScalarI64(user_d_expert));
  out.emplace_back("config.n_shared_experts", ScalarI64(c.n_shared_experts));
  out.emplace_back("config.d_shared", ScalarI64(c.d_shared));
  out.emplace_back("config.router_score",
                   ScalarI64(c.router_score == RouterScore::kSigmoid ? 1 : 0));
  out.emplace_back("config.z_loss_coeff", ScalarF64(c.z_loss_coeff));
  out.emplace_back("config.expert_bias_rate", ScalarF64(c.expert_bias_rate));
  out.emplace_back("config.d_low", ScalarI64(c.d_low));
  out.emplace_back("config.d_wide", ScalarI64(c.d_wide));
  out.emplace_back("config.resolved_d_wide", ScalarI64(c.ResolvedDWide()));
  out.emplace_back("config.aoe_gate", ScalarI64(c.aoe_gate == AoeGateVariant::kPaper ? 0 : 1));
  out.emplace_back("config.aux_loss_coeff", ScalarF64(c.aux_loss_coeff));
  out.emplace_back("config.rope_theta", ScalarF64(c.rope_theta));
  out.emplace_back("config.norm_eps", ScalarF64(c.norm_eps));
  out.emplace_back("config.init_std", ScalarF64(c.init_std));
  out.emplace_back("config.dtype", ScalarI64(dtype == DType::kF32 ? 0 : 1));

  GptModel model(c, Device::Cpu(), dtype);
  ParameterSet& params = model.parameters();
  params.Initialize(seed);
  // The expert bias starts at 0 in training; --bias_std gives it N(0, std²) values so that the
  // first batch's selection already depends on it.
  const double bias_std = flags.Real("bias_std", 0.0);
  for (Parameter& p : params.all()) {
    if (p.trainable || bias_std == 0.0) continue;
    DispatchFloat(p.master.dtype(), [&]<typename T>() {
      for (int64_t i = 0; i < p.master.numel(); ++i) {
        p.master.data<T>()[i] = static_cast<T>(bias_std * NormalAt(seed, StableHash(p.name), i));
      }
    });
  }
  for (const Parameter& p : params.all()) out.emplace_back("init." + p.name, Copy(p.value));
  for (const Parameter& p : params.all()) {
    out.emplace_back("decay." + p.name, ScalarI64(p.weight_decay ? 1 : 0));
  }

  auto tokens_for_step = [&](int64_t s) {
    return RandomTokens(data_seed, absl::StrCat("parity.step", s, ".tokens"), batch, c.seq_len,
                        c.vocab_size);
  };
  auto targets_for_step = [&](int64_t s) {
    return RandomTokens(data_seed, absl::StrCat("parity.step", s, ".targets"), batch, c.seq_len,
                        c.vocab_size);
  };

  ActivationArena arena;
  const Tensor tokens = tokens_for_step(1), targets = targets_for_step(1);
  params.ZeroGrads();
  const StepOutputs first = model.ForwardBackward(tokens, targets, 1.0f, arena);
  out.emplace_back("tokens", tokens);
  out.emplace_back("targets", targets);
  AddStepStats(out, "", first);
  for (const Parameter& p : params.all()) out.emplace_back("grad." + p.name, Copy(p.grad));
  std::cout << "parity_dump: " << FfnKindName(c.ffn) << (c.ffn == FfnKind::kAoe ? " " + gate : "")
            << " " << dtype_name << " loss " << first.loss << " aux " << first.aux_loss << "\n";

  out.emplace_back("adamw.steps", ScalarI64(steps));
  if (steps > 0) {
    AdamWHyperParams hp;  // the defaults (β1 0.9, β2 0.95, ε 1e-8, λ 0.1), ε as asked
    hp.eps = static_cast<float>(flags.Real("adam_eps", hp.eps));
    AdamWOptimizer optimizer(&params, hp);
    out.emplace_back("adamw.lr", ScalarF64(lr));
    out.emplace_back("adamw.beta1", ScalarF64(hp.beta1));
    out.emplace_back("adamw.beta2", ScalarF64(hp.beta2));
    out.emplace_back("adamw.eps", ScalarF64(hp.eps));
    out.emplace_back("adamw.weight_decay", ScalarF64(hp.weight_decay));
    for (int64_t s = 1; s <= steps; ++s) {
      const std::string prefix = absl::StrCat("step", s, ".");
      const Tensor step_tokens = tokens_for_step(s), step_targets = targets_for_step(s);
      params.ZeroGrads();
      const StepOutputs step = model.ForwardBackward(step_tokens, step_targets, 1.0f, arena);
      for (const Parameter& p : params.all()) {
        out.emplace_back(prefix + "grad." + p.name, Copy(p.grad));
      }
      optimizer.Step(lr);
      model.UpdateExpertBiases();
      out.emplace_back(prefix + "tokens", step_tokens);
      out.emplace_back(prefix + "targets", step_targets);
      AddStepStats(out, prefix, step);
      for (const Parameter& p : params.all()) {
        out.emplace_back(prefix + "param." + p.name, Copy(p.value));
      }
      std::cout << "parity_dump: step " << s << " loss " << step.loss << "\n";
    }
  }

  if (absl::Status s = WriteTensorBundle(out_path, out); !s.ok()) {
    std::cerr << "parity_dump: " << s << "\n";
    return 1;
  }
  std::cout << "parity_dump: wrote " << out.size() << " tensors to " << out_path << "\n";
  return 0;
}

}  // namespace
}  // namespace aoetron

int main(int argc, char** argv) { return aoetron::Main(argc, argv); }
