#include "launcher/study/study_plan.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "launcher/config_conversion.h"
#include "launcher/config_loader.h"
#include "launcher/config_validation.h"
#include "launcher/indexed_source.h"
#include "launcher/study/metrics_reader.h"
#include "launcher/study/model_size.h"
#include "launcher/study/run_status.h"
#include "models/flop_count.h"

namespace aoetron::study {
namespace {

namespace fs = std::filesystem;

absl::Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

constexpr const char* kBalancingChoices = "aux_loss, aux_free, both, none";
constexpr const char* kHoldChoices = "none, active_params, active_flops";

// `label` is where the point's values were written: "axes" or "point[2]" (or
// "matching.reference"), so errors name the field as the spec spells it.
absl::Status ApplyShape(const Point& point, const std::string& label, const Balancing& balancing,
                        config::TrainConfig* config) {
  config::ModelSection& model = *config->mutable_model();
  if (point.has_ffn()) {
    config::ModelSection::Ffn ffn;
    if (!config::ModelSection::Ffn_Parse(point.ffn(), &ffn)) {
      return Invalid(absl::StrFormat("%s.ffn: unknown value \"%s\"; valid values: dense, moe, aoe",
                                     label, point.ffn()));
    }
    model.set_ffn(ffn);
  }
  if (point.has_n_experts()) model.set_n_experts(point.n_experts());
  if (point.has_granularity()) model.set_granularity(point.granularity());
  if (point.has_top_k()) model.set_top_k(point.top_k());
  if (point.has_d_low()) model.set_d_low(point.d_low());
  if (point.has_n_shared_experts()) model.set_n_shared_experts(point.n_shared_experts());
  if (point.has_balancing()) {
    const std::string& choice = point.balancing();
    if (choice == "aux_loss") {
      model.set_aux_loss_coeff(balancing.aux_loss_coeff());
      model.set_expert_bias_rate(0);
    } else if (choice == "aux_free") {
      model.set_aux_loss_coeff(0);
      model.set_expert_bias_rate(balancing.expert_bias_rate());
    } else if (choice == "both") {
      model.set_aux_loss_coeff(balancing.aux_loss_coeff());
      model.set_expert_bias_rate(balancing.expert_bias_rate());
    } else if (choice == "none") {
      model.set_aux_loss_coeff(0);
      model.set_expert_bias_rate(0);
    } else {
      return Invalid(absl::StrFormat("%s.balancing: unknown value \"%s\"; valid values: %s", label,
                                     choice, kBalancingChoices));
    }
  }
  if (point.has_seed()) config->mutable_train()->set_seed(point.seed());
  for (int i = 0; i < point.overrides_size(); ++i) {
    if (absl::Status applied = ApplyConfigOverride(point.overrides(i), config); !applied.ok()) {
      return Invalid(absl::StrFormat("%s.overrides[%d]: %s", label, i, applied.message()));
    }
  }
  return absl::OkStatus();
}

std::string FfnName(const config::TrainConfig& config) {
  return config::ModelSection::Ffn_Name(config.model().ffn());
}

// ffn, n, G, K, r (AoE), S: what decides the free width's role.
std::string ShapeKey(const config::TrainConfig& config, bool with_experts) {
  const config::ModelSection& m = config.model();
  if (m.ffn() == config::ModelSection::dense) return "dense";
  std::string key = FfnName(config);
  if (with_experts) absl::StrAppend(&key, " n", m.n_experts());
  absl::StrAppend(&key, " G", m.granularity(), " K", m.top_k());
  if (m.ffn() == config::ModelSection::aoe) absl::StrAppend(&key, " r", m.d_low());
  if (m.n_shared_experts() > 0) absl::StrAppend(&key, " S", m.n_shared_experts());
  return key;
}

// 1000000 → "1M", 1500 → "1500", 2e12 → "2e12".
std::string CompactNumber(double value) {
  if (value >= 1e3 && value == std::floor(value) && value < 1e15) {
    const int64_t v = static_cast<int64_t>(value);
    if (v % 1000000000 == 0) return absl::StrCat(v / 1000000000, "G");
    if (v % 1000000 == 0) return absl::StrCat(v / 1000000, "M");
    if (v % 1000 == 0) return absl::StrCat(v / 1000, "k");
    return absl::StrCat(v);
  }
  std::string text = absl::StrFormat("%.3g", value);
  text.erase(std::remove(text.begin(), text.end(), '+'), text.end());
  return text;
}

// "aoe-n8-g1-k2-r16[-s1][-aux_free][-seed3][-tok1M]".
std::string AutoName(const config::TrainConfig& config, const Point& point) {
  const config::ModelSection& m = config.model();
  std::string name = FfnName(config);
  if (m.ffn() != config::ModelSection::dense) {
    absl::StrAppend(&name, "-n", m.n_experts(), "-g", m.granularity(), "-k", m.top_k());
    if (m.ffn() == config::ModelSection::aoe) absl::StrAppend(&name, "-r", m.d_low());
    if (m.n_shared_experts() > 0) absl::StrAppend(&name, "-s", m.n_shared_experts());
    if (point.has_balancing()) absl::StrAppend(&name, "-", point.balancing());
  }
  if (point.has_seed()) absl::StrAppend(&name, "-seed", point.seed());
  if (point.has_tokens()) absl::StrAppend(&name, "-tok", CompactNumber(point.tokens()));
  if (point.has_flops()) absl::StrAppend(&name, "-flops", CompactNumber(point.flops()));
  return name;
}

bool ValidRunName(const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name == "report") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

// Every point of the axes' product, in axis order (the last axis varies fastest).
std::vector<Point> ExpandAxes(const Axes& axes) {
  std::vector<Point> points(1);
  auto cross = [&points](int count, const std::function<void(int, Point*)>& set) {
    if (count == 0) return;
    std::vector<Point> next;
    for (const Point& base : points) {
      for (int i = 0; i < count; ++i) {
        Point p = base;
        set(i, &p);
        next.push_back(std::move(p));
      }
    }
    points = std::move(next);
  };
  cross(axes.ffn_size(), [&](int i, Point* p) { p->set_ffn(axes.ffn(i)); });
  cross(axes.n_experts_size(), [&](int i, Point* p) { p->set_n_experts(axes.n_experts(i)); });
  cross(axes.granularity_size(), [&](int i, Point* p) { p->set_granularity(axes.granularity(i)); });
  cross(axes.top_k_size(), [&](int i, Point* p) { p->set_top_k(axes.top_k(i)); });
  cross(axes.d_low_size(), [&](int i, Point* p) { p->set_d_low(axes.d_low(i)); });
  cross(axes.n_shared_experts_size(),
        [&](int i, Point* p) { p->set_n_shared_experts(axes.n_shared_experts(i)); });
  cross(axes.balancing_size(), [&](int i, Point* p) { p->set_balancing(axes.balancing(i)); });
  cross(axes.seed_size(), [&](int i, Point* p) { p->set_seed(axes.seed(i)); });
  cross(axes.tokens_size(), [&](int i, Point* p) { p->set_tokens(axes.tokens(i)); });
  cross(axes.flops_size(), [&](int i, Point* p) { p->set_flops(axes.flops(i)); });
  return points;
}

// The dense model ignores the expert fields: drop them so that the product's dense points
// collapse into one per seed and budget.
Point WithoutIgnoredFields(Point point, const config::TrainConfig& base, const std::string& label,
                           const Balancing& balancing) {
  config::TrainConfig probe = base;
  if (!ApplyShape(point, label, balancing, &probe).ok()) return point;  // reported later
  if (probe.model().ffn() == config::ModelSection::dense) {
    point.clear_n_experts();
    point.clear_granularity();
    point.clear_top_k();
    point.clear_d_low();
    point.clear_n_shared_experts();
    point.clear_balancing();
  } else if (probe.model().ffn() == config::ModelSection::moe) {
    point.clear_d_low();
  }
  return point;
}

absl::Status CheckDataFiles(const config::TrainConfig& config) {
  const config::DataSection& d = config.data();
  if (d.source() == config::DataSection::indexed) {
    absl::StatusOr<std::vector<data::WeightedDataset>> blend = ParseDatasetBlend(d.datasets());
    if (!blend.ok()) return blend.status();
    for (const data::WeightedDataset& dataset : *blend) {
      const std::string& prefix = dataset.path;
      const bool manifest = fs::exists(prefix + ".manifest");
      const bool pair = fs::exists(prefix + ".bin") && fs::exists(prefix + ".idx");
      if (!manifest && !pair) {
        return Invalid(absl::StrFormat(
            "data.datasets: no dataset at \"%s\" (neither %s.manifest nor %s.bin + %s.idx, "
            "relative to %s)",
            prefix, prefix, prefix, prefix, fs::current_path().string()));
      }
    }
  } else if (d.source() == config::DataSection::token_file) {
    for (const auto& [field, path] :
         {std::pair<std::string, std::string>{"data.token_file_path", d.token_file_path()},
          {"data.eval_token_file_path", d.eval_token_file_path()}}) {
      if (!path.empty() && !fs::exists(path)) {
        return Invalid(absl::StrFormat("%s: no file \"%s\" (relative to %s)", field, path,
                                       fs::current_path().string()));
      }
    }
  }
  return absl::OkStatus();
}

int64_t TokensPerStep(const config::TrainConfig& config, int ranks) {
  const int64_t tp = std::max<int64_t>(1, config.parallel().tp());
  const BatchLayout layout = ResolveBatchLayout(config, ranks / tp);
  return layout.global_batch_size * config.model().seq_len();
}

}  // namespace

std::string HumanCount(double value) {
  const double magnitude = std::fabs(value);
  static const std::pair<double, const char*> kPrefixes[] = {{1e18, "E"}, {1e15, "P"}, {1e12, "T"},
                                                             {1e9, "G"},  {1e6, "M"},  {1e3, "k"}};
  for (const auto& [scale, prefix] : kPrefixes) {
    if (magnitude >= scale) return absl::StrFormat("%.3g%s", value / scale, prefix);
  }
  return absl::StrFormat("%.3g", value);
}

std::string HumanDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = std::llround(seconds);
  if (s >= 3600) return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

absl::StatusOr<StudyPlan> MakeStudyPlan(const StudySpec& spec, const std::string& spec_path) {
  StudyPlan plan;
  plan.spec = spec;
  plan.spec_path = spec_path;
  const fs::path spec_dir = fs::absolute(spec_path).parent_path();
  plan.name = spec.has_name() ? spec.name() : fs::path(spec_path).stem().string();
  if (!ValidRunName(plan.name)) {
    return Invalid(absl::StrFormat(
        "name: \"%s\" must be letters, digits, '-', '_' or '.' (it names a directory)", plan.name));
  }
  plan.out_dir = (spec_dir / (spec.has_out_dir() ? spec.out_dir() : plan.name)).lexically_normal();
  const int ranks = spec.execution().ranks();
  if (ranks < 1) return Invalid(absl::StrFormat("execution.ranks (%d) must be ≥ 1", ranks));
  const std::string& launcher = spec.execution().launcher();
  if (launcher != "local" && launcher != "slurm") {
    return Invalid(absl::StrFormat(
        "execution.launcher: unknown value \"%s\"; valid values: local, slurm", launcher));
  }
  if (spec.bytes_per_token() < 0) {
    return Invalid(absl::StrFormat("bytes_per_token (%g) must be ≥ 0", spec.bytes_per_token()));
  }

  // 1. The base config: the file, then the spec's overrides.
  config::TrainConfig base;
  if (spec.has_base_config()) {
    const fs::path path = fs::path(spec.base_config()).is_absolute()
                              ? fs::path(spec.base_config())
                              : spec_dir / spec.base_config();
    absl::StatusOr<config::TrainConfig> read = ReadTrainConfigFile(path.string());
    if (!read.ok()) return Invalid(absl::StrCat("base_config: ", read.status().message()));
    base = *std::move(read);
  }
  for (int i = 0; i < spec.overrides_size(); ++i) {
    if (absl::Status applied = ApplyConfigOverride(spec.overrides(i), &base); !applied.ok()) {
      return Invalid(absl::StrFormat("overrides[%d]: %s", i, applied.message()));
    }
  }
  if (absl::Status valid = ValidateTrainConfig(base, ranks); !valid.ok()) {
    return Invalid(absl::StrCat("the base config (base_config with overrides, for ",
                                "execution.ranks ", ranks, "): ", valid.message()));
  }
  if (absl::Status data = CheckDataFiles(base); !data.ok()) {
    return Invalid(absl::StrCat("the base config: ", data.message()));
  }

  // 2. The points: the axes' product or the explicit list.
  const bool has_axes = spec.has_axes() && spec.axes().ByteSizeLong() > 0;
  if (has_axes && spec.point_size() > 0) {
    return Invalid("give either axes (a product) or point (an explicit list), not both");
  }
  if (spec.axes().tokens_size() > 0 && spec.axes().flops_size() > 0) {
    return Invalid("axes: give tokens or flops budgets, not both");
  }
  struct PendingPoint {
    Point point;
    std::string label;
  };
  std::vector<PendingPoint> pending;
  if (spec.point_size() > 0) {
    for (int i = 0; i < spec.point_size(); ++i) {
      pending.push_back({spec.point(i), absl::StrFormat("point[%d]", i)});
    }
  } else {
    for (const Point& point : ExpandAxes(spec.axes())) {
      pending.push_back({WithoutIgnoredFields(point, base, "axes", spec.balancing()), "axes"});
    }
  }

  // 3. The matching rule and its reference.
  const std::string& hold = spec.matching().hold();
  if (hold == "active_params") {
    plan.hold = MatchedQuantity::kActiveParams;
  } else if (hold == "active_flops") {
    plan.hold = MatchedQuantity::kActiveFlops;
  } else if (hold != "none") {
    return Invalid(absl::StrFormat("matching.hold: unknown value \"%s\"; valid values: %s", hold,
                                   kHoldChoices));
  }
  config::TrainConfig reference = base;
  if (absl::Status shaped = ApplyShape(spec.matching().reference(), "matching.reference",
                                       spec.balancing(), &reference);
      !shaped.ok()) {
    return shaped;
  }
  if (absl::Status valid = ValidateTrainConfig(reference, ranks); !valid.ok()) {
    return Invalid(absl::StrCat("matching.reference: ", valid.message()));
  }
  const ModelConfig reference_model = ModelConfigFromConfig(reference);
  if (plan.hold.has_value()) {
    plan.target = MatchedQuantityOf(reference_model, *plan.hold);
    const std::string reference_name = spec.matching().reference().has_name()
                                           ? spec.matching().reference().name()
                                           : AutoName(reference, Point());
    plan.reference =
        absl::StrFormat("\"%s\" (%s, %s=%d)", reference_name, ShapeKey(reference, true),
                        FreeWidthField(reference_model.ffn), FreeWidth(reference_model));
  }

  // 4. Each point: shape, matched width, budget, validation, data.
  std::map<std::string, std::string> names;  // name → label that took it
  for (const PendingPoint& p : pending) {
    PlannedRun run;
    run.origin = p.label;
    run.config = base;
    if (absl::Status shaped = ApplyShape(p.point, p.label, spec.balancing(), &run.config);
        !shaped.ok()) {
      return shaped;
    }
    run.name = p.point.has_name() ? p.point.name() : AutoName(run.config, p.point);
    if (!ValidRunName(run.name)) {
      return Invalid(absl::StrFormat(
          "%s.name: \"%s\" must be letters, digits, '-', '_' or '.' (it names a directory)",
          p.label, run.name));
    }
    if (const auto taken = names.find(run.name); taken != names.end()) {
      if (p.label == "axes") continue;  // the same run again (a dense model crossed with n)
      return Invalid(absl::StrFormat("%s.name: \"%s\" is also the name of %s", p.label, run.name,
                                     taken->second));
    }
    names[run.name] = p.label;
    const std::string where = absl::StrFormat("point \"%s\" (%s)", run.name, p.label);
    if (p.point.has_tokens() && p.point.has_flops()) {
      return Invalid(absl::StrFormat("%s: give tokens or flops, not both", where));
    }
    const bool derive =
        plan.hold.has_value() && ShapeKey(run.config, true) != ShapeKey(reference, true);
    if (derive) {
      // A placeholder width every layout splits, so that the checks below judge the other
      // fields (granularity need not divide d_ffn once d_expert is set).
      config::ModelSection& m = *run.config.mutable_model();
      if (m.ffn() == config::ModelSection::dense) m.set_d_ffn(64);
      if (m.ffn() == config::ModelSection::moe) m.set_d_expert(64);
      if (m.ffn() == config::ModelSection::aoe) m.set_d_wide(64);
    }
    if (absl::Status valid = ValidateTrainConfig(run.config, ranks); !valid.ok()) {
      return Invalid(absl::StrCat(where, ": ", valid.message()));
    }
    ModelConfig model = ModelConfigFromConfig(run.config);
    run.width_field = FreeWidthField(model.ffn);
    if (derive) {
      absl::StatusOr<MatchedWidth> matched = DeriveMatchedWidth(model, *plan.hold, plan.target);
      if (!matched.ok()) {
        return Invalid(absl::StrFormat("%s: cannot hold %s at %d (reference %s): %s", where,
                                       MatchedQuantityName(*plan.hold), plan.target, plan.reference,
                                       matched.status().message()));
      }
      config::ModelSection& m = *run.config.mutable_model();
      switch (model.ffn) {
        case FfnKind::kDense:
          m.set_d_ffn(matched->width);
          break;
        case FfnKind::kRouterMoe:
          m.set_d_expert(matched->width);
          break;
        case FfnKind::kAoe:
          m.set_d_wide(matched->width);
          break;
      }
      run.width_derived = true;
      if (absl::Status valid = ValidateTrainConfig(run.config, ranks); !valid.ok()) {
        return Invalid(absl::StrFormat("%s: with the matched %s=%d: %s", where, run.width_field,
                                       matched->width, valid.message()));
      }
      model = ModelConfigFromConfig(run.config);
    }
    run.flops_per_token = CountTrainingFlopsPerToken(model).total();
    run.tokens_per_step = TokensPerStep(run.config, ranks);
    if (p.point.has_tokens() || p.point.has_flops()) {
      const double tokens = p.point.has_tokens()
                                ? static_cast<double>(p.point.tokens())
                                : p.point.flops() / static_cast<double>(run.flops_per_token);
      if (!(tokens > 0)) {
        return Invalid(absl::StrFormat("%s: %s must be > 0", where,
                                       p.point.has_tokens() ? "tokens" : "flops"));
      }
      const double steps = tokens / static_cast<double>(run.tokens_per_step);
      run.config.mutable_train()->set_steps(
          std::max<int64_t>(1, p.point.has_tokens() ? static_cast<int64_t>(std::ceil(steps - 1e-9))
                                                    : std::llround(steps)));
      if (absl::Status valid = ValidateTrainConfig(run.config, ranks); !valid.ok()) {
        return Invalid(absl::StrFormat("%s: with train.steps=%d from its %s budget: %s", where,
                                       run.config.train().steps(),
                                       p.point.has_tokens() ? "tokens" : "flops", valid.message()));
      }
    }
    if (absl::Status data = CheckDataFiles(run.config); !data.ok()) {
      return Invalid(absl::StrCat(where, ": ", data.message()));
    }
    const config::ModelSection& m = run.config.model();
    run.model = model;
    run.ffn = FfnName(run.config);
    run.n_experts = m.n_experts();
    run.granularity = m.granularity();
    run.top_k = m.top_k();
    run.d_low = m.d_low();
    run.n_shared_experts = m.n_shared_experts();
    run.balancing = p.point.balancing();
    run.seed = run.config.train().seed();
    run.width = FreeWidth(model);
    run.total_params = TotalParameters(model);
    run.active_params = ActiveMatmulParameters(model);
    run.steps = run.config.train().steps();
    run.tokens = run.steps * run.tokens_per_step;
    run.training_flops = static_cast<double>(run.tokens) * static_cast<double>(run.flops_per_token);
    const std::string balancing_key =
        model.is_moe() && !run.balancing.empty() ? " " + run.balancing : "";
    run.family = ShapeKey(run.config, false) + balancing_key;
    run.model_family = ShapeKey(run.config, true) + balancing_key;
    plan.runs.push_back(std::move(run));
  }
  return plan;
}

FlopRate ChooseFlopRate(const StudyPlan& plan, const std::string& out_dir) {
  FlopRate rate;
  if (plan.spec.execution().flops_per_second() > 0) {
    rate.flops_per_second = plan.spec.execution().flops_per_second();
    rate.source = "execution.flops_per_second in the spec";
    return rate;
  }
  std::vector<double> tflops;
  int runs = 0;
  for (const PlannedRun& run : plan.runs) {
    const std::string dir = out_dir + "/" + run.name;
    absl::StatusOr<RunStatus> status = ReadRunStatus(dir);
    if (!status.ok() || status->state() != RunStatus::finished) continue;
    absl::StatusOr<std::vector<MetricsRecord>> records = ReadMetricsFile(dir + "/metrics.jsonl");
    if (!records.ok()) continue;
    ++runs;
    for (const MetricsRecord& r : *records) {
      if (r.step > 1 && r.model_tflops > 0) tflops.push_back(r.model_tflops);
    }
  }
  if (tflops.empty()) {
    rate.source =
        "no FLOP rate: set execution.flops_per_second, or run some points and plan again (the "
        "finished runs' measured model FLOP/s is used)";
    return rate;
  }
  std::nth_element(tflops.begin(), tflops.begin() + tflops.size() / 2, tflops.end());
  rate.flops_per_second = tflops[tflops.size() / 2] * 1e12;
  rate.source = absl::StrFormat(
      "measured: the median model FLOP/s logged by the %d finished run(s) under %s", runs, out_dir);
  return rate;
}

std::string FormatPlanTable(const StudyPlan& plan, const FlopRate& rate) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"#", "name", "ffn", "n", "G", "K", "r", "S", "width", "total", "active",
                  "FLOP/token", "steps", "tokens", "train FLOPs", "est. time"});
  double total_flops = 0;
  for (size_t i = 0; i < plan.runs.size(); ++i) {
    const PlannedRun& r = plan.runs[i];
    const bool routed = r.model.is_moe();
    total_flops += r.training_flops;
    rows.push_back(
        {absl::StrCat(i + 1), r.name, r.ffn, routed ? absl::StrCat(r.n_experts) : "-",
         routed ? absl::StrCat(r.granularity) : "-", routed ? absl::StrCat(r.top_k) : "-",
         r.ffn == "aoe" ? absl::StrCat(r.d_low) : "-",
         routed ? absl::StrCat(r.n_shared_experts) : "-",
         absl::StrCat(r.width_field.substr(6), "=", r.width, r.width_derived ? "*" : ""),
         HumanCount(r.total_params), HumanCount(r.active_params), HumanCount(r.flops_per_token),
         absl::StrCat(r.steps), HumanCount(r.tokens), HumanCount(r.training_flops),
         rate.flops_per_second > 0 ? HumanDuration(r.training_flops / rate.flops_per_second)
                                   : "-"});
  }
  std::vector<size_t> widths(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string text = absl::StrFormat("study \"%s\": %d run(s), %s training FLOPs in all\n",
                                     plan.name, plan.runs.size(), HumanCount(total_flops));
  if (plan.hold.has_value()) {
    absl::StrAppendFormat(&text,
                          "matching: %s held at %s, the value of the reference %s; * = width "
                          "derived (rounded: multiple of 64, of 8 below 64)\n",
                          MatchedQuantityName(*plan.hold), HumanCount(plan.target), plan.reference);
  } else {
    text += "matching: none (widths as the configs give them)\n";
  }
  absl::StrAppendFormat(
      &text, "time estimates: %s%s\n", rate.source,
      rate.flops_per_second > 0
          ? absl::StrFormat(" (%s FLOP/s; all runs: %s)", HumanCount(rate.flops_per_second),
                            HumanDuration(total_flops / rate.flops_per_second))
          : "");
  absl::StrAppendFormat(&text, "ranks: %d per run; output: %s\n\n", plan.spec.execution().ranks(),
                        plan.out_dir);
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      const bool left = c == 1 || c == 2 || c == 8;
      line += left ? absl::StrFormat("%-*s", widths[c], row[c])
                   : absl::StrFormat("%*s", widths[c], row[c]);
      if (c + 1 < row.size()) line += "  ";
    }
    text += line + "\n";
  }
  return text;
}

}  // namespace aoetron::study
