// From a study spec to the list of runs it means: every point's resolved TrainConfig, its shape,
// its sizes (total and active parameters, FLOPs per token) and its budget, checked before
// anything runs.
//
// A plan is refused (absl::InvalidArgumentError) when any point cannot run, and the message
// names the point and the field: an unknown axis value ("axes.ffn: unknown value "mixture"; valid
// values: dense, moe, aoe"), a point whose width cannot be matched ("point "aoe-n64-g1-k2-r64":
// cannot hold active_flops at 1.2e+07: model.d_wide would need ..."), a resulting TrainConfig
// that ValidateTrainConfig refuses ("point "moe-n6-g1-k2": model.n_experts·granularity (6) must
// be divisible by parallel.ep (4)"), a missing dataset ("... data.datasets: no dataset at
// "corpora/x" (neither x.manifest nor x.bin + x.idx)").
//
// How axes expand, how names are made, the matching rule and budgets: docs/scaling_study.md.
//
// Thread safety: pure functions of their arguments (and the file system: the base config and
// the datasets are read).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "launcher/config.pb.h"
#include "launcher/study/study.pb.h"
#include "launcher/study/width_matching.h"
#include "models/model_config.h"

namespace aoetron::study {

struct PlannedRun {
  std::string name;    // also its directory under the study's output directory
  std::string origin;  // "axes" or "point[i]": where it came from
  // The shape as the config spells it (granularity not applied).
  std::string ffn;  // dense | moe | aoe
  int64_t n_experts = 0, granularity = 1, top_k = 0, d_low = 0, n_shared_experts = 0;
  std::string balancing;  // as the spec chose it; "" when it did not
  uint64_t seed = 0;      // train.seed
  // Validated for execution.ranks processes. The runner adds the run's own checkpoint.dir and
  // logging.metrics_file.
  config::TrainConfig config;
  ModelConfig model;           // as the layers see it (granularity applied)
  int64_t width = 0;           // the free width (width_matching.h), as resolved
  std::string width_field;     // model.d_ffn | model.d_expert | model.d_wide
  bool width_derived = false;  // set by the matching rule
  int64_t total_params = 0;
  int64_t active_params = 0;
  int64_t flops_per_token = 0;  // training FLOPs per token (models/flop_count.h)
  int64_t tokens_per_step = 0;  // global batch · seq_len
  int64_t steps = 0;
  int64_t tokens = 0;           // steps · tokens_per_step
  double training_flops = 0.0;  // tokens · flops_per_token
  // Report groupings: the shape without n_experts, seed and budget ("aoe G1 K2 r16"), and the
  // shape with n_experts but without seed and budget ("aoe n8 G1 K2 r16").
  std::string family;
  std::string model_family;
};

struct StudyPlan {
  StudySpec spec;
  std::string spec_path;
  std::string name;
  std::string out_dir;  // default output directory (spec.out_dir, or <spec dir>/<name>)
  std::optional<MatchedQuantity> hold;  // none when matching.hold is none
  std::string reference;                // "dense d_ffn=128", when matching
  int64_t target = 0;                   // the held quantity's value
  std::vector<PlannedRun> runs;
};

// Expands and checks `spec` (read from `spec_path`, which anchors its relative paths).
absl::StatusOr<StudyPlan> MakeStudyPlan(const StudySpec& spec, const std::string& spec_path);

// A FLOP rate for time estimates and where it came from.
struct FlopRate {
  double flops_per_second = 0.0;  // 0: none known
  std::string source;             // "execution.flops_per_second in the spec", "measured: ..."
};
// execution.flops_per_second when set; else the median model_tflops logged by the finished runs
// under `out_dir`; else none.
FlopRate ChooseFlopRate(const StudyPlan& plan, const std::string& out_dir);

// The plan as a text table, one row per run, with a header saying what is held and where the
// time estimates come from.
std::string FormatPlanTable(const StudyPlan& plan, const FlopRate& rate);

// "1.23M", "4.56G" (SI prefixes, 3 significant digits); "12h05m", "3m20s", "12s".
std::string HumanCount(double value);
std::string HumanDuration(double seconds);

}  // namespace aoetron::study
