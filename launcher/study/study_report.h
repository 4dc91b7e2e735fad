// The study's report: one row per run read back from its run directory (status file and
// metrics.jsonl), written as CSV and Markdown, with power-law fits of loss against compute and a
// plain statement of what the runs can and cannot support. Plots: gnuplot_plots.h.
//
// Every number in a row comes from the run's own files (docs/scaling_study.md, "Report"):
//   final_loss      loss of the last logged step
//   val_loss        the last val_loss logged (held-out loss)
//   bits_per_byte   val_loss / ln 2 / spec.bytes_per_token; empty without bytes_per_token
//   tokens          tokens of the last logged step (trained so far)
//   training_flops  tokens · FLOPs per token (models/flop_count.h)
//   tokens_per_s    median of the logged tokens_per_s, step 1 (warm-up) left out when there are
//                   later steps
//   peak_rss_mib    the status file's peak_rss_kib / 1024: the largest process of the job as
//                   wait4 saw it (the trainer does not log memory); empty when no launch of the
//                   run ended under the study's eyes
//   ent_load        the last step's mean over layers of Ent_load
//   load_max_over_mean  the last step's mean over layers of load_max · n (n routed experts)
//
// Thread safety: pure functions of their arguments and the run directories.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "launcher/study/power_law_fit.h"
#include "launcher/study/study_plan.h"

namespace aoetron::study {

struct ReportRow {
  PlannedRun run;
  std::string state;  // pending | running | finished | failed
  std::string error;  // first line of a failed run's error
  int64_t steps_done = 0;
  int64_t tokens = 0;
  double training_flops = 0.0;
  std::optional<double> final_loss, val_loss, bits_per_byte, tokens_per_s, peak_rss_mib;
  std::optional<double> ent_load, load_max_over_mean;
  // Every evaluation: (training FLOPs so far, val_loss), for the loss-vs-compute plot.
  std::vector<std::pair<double, double>> val_curve;
};

struct FamilyFit {
  std::string family;  // PlannedRun::model_family
  std::optional<PowerLawFit> fit;
  std::string why_not;  // when there is no fit
  double min_compute = 0.0, max_compute = 0.0;
};

struct StudyReport {
  std::string name;
  std::vector<ReportRow> rows;
  std::vector<FamilyFit> fits;
  std::vector<std::string> statement;  // what the data can and cannot support, one per line
  std::vector<std::string> notes;      // about columns left empty, and why
  std::vector<std::string> plots;      // PNG files written (names relative to the report)
  std::string plots_note;              // why plots are missing, if they are
};

absl::StatusOr<StudyReport> BuildStudyReport(const StudyPlan& plan, const std::string& out_dir);

// The CSV header and one line per run; numbers with 9 significant digits, unknown values empty.
std::string ReportCsv(const StudyReport& report);
std::string ReportMarkdown(const StudyReport& report);

}  // namespace aoetron::study
