#include "launcher/study/study_report.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "launcher/study/metrics_reader.h"
#include "launcher/study/run_status.h"

namespace aoetron::study {
namespace {

double Mean(const std::vector<double>& values) {
  double sum = 0;
  for (double v : values) sum += v;
  return values.empty() ? 0.0 : sum / static_cast<double>(values.size());
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

std::string Number(const std::optional<double>& value) {
  return value.has_value() && std::isfinite(*value) ? absl::StrFormat("%.9g", *value) : "";
}

// What the runs of the study support, in plain words.
std::vector<std::string> Statement(const StudyReport& report) {
  std::vector<std::string> lines;
  int finished = 0, failed = 0, other = 0;
  for (const ReportRow& row : report.rows) {
    if (row.state == "finished")
      ++finished;
    else if (row.state == "failed")
      ++failed;
    else
      ++other;
  }
  lines.push_back(absl::StrFormat(
      "%d run(s): %d finished, %d failed, %d not finished. Only finished runs enter the fits and "
      "the per-family comparisons.",
      report.rows.size(), finished, failed, other));
  // Seed spread per model family (final held-out loss).
  std::map<std::string, std::vector<double>> by_model;
  for (const ReportRow& row : report.rows) {
    if (row.state == "finished" && row.val_loss.has_value()) {
      by_model[absl::StrCat(row.run.model_family, " @ ", HumanCount(row.training_flops))].push_back(
          *row.val_loss);
    }
  }
  double widest_spread = 0;
  int with_seeds = 0, single = 0;
  for (const auto& [key, losses] : by_model) {
    if (losses.size() >= 2) {
      ++with_seeds;
      widest_spread = std::max(widest_spread, *std::max_element(losses.begin(), losses.end()) -
                                                  *std::min_element(losses.begin(), losses.end()));
    } else {
      ++single;
    }
  }
  if (with_seeds > 0) {
    lines.push_back(absl::StrFormat(
        "Seed spread: %d model(s) ran with 2 or more seeds; the widest spread of final held-out "
        "loss is %.4f. Differences between models smaller than that are not resolved by this "
        "study.",
        with_seeds, widest_spread));
  }
  if (single > 0) {
    lines.push_back(absl::StrFormat(
        "%d model(s) ran with one seed only: their run-to-run noise is unknown, so a difference "
        "between two of them is not evidence of a difference between the models.",
        single));
  }
  for (const FamilyFit& fit : report.fits) {
    if (fit.fit.has_value()) {
      const PowerLawFit& f = *fit.fit;
      lines.push_back(absl::StrFormat(
          "%s: L = %.4g·C^(−%.4f ± %.4f) from %d runs at %d compute values, %s to %s FLOPs "
          "(×%.3g), R² %.4f. It describes these runs inside that range only; it says nothing "
          "beyond it, and with few points the ± (one standard error) is rough%s.",
          fit.family, f.a, f.b, f.se_b, f.points, f.distinct_compute, HumanCount(fit.min_compute),
          HumanCount(fit.max_compute), fit.max_compute / fit.min_compute, f.r_squared,
          f.points - 2 <= 1 ? " (one degree of freedom)" : ""));
    } else {
      lines.push_back(absl::StrFormat("%s: no power law (%s).", fit.family, fit.why_not));
    }
  }
  lines.push_back(
      "Each run is a separate training with its own complete learning-rate schedule; the fits use "
      "final losses only, never intermediate points of one run. Equal active parameters or "
      "FLOPs per token do not mean equal wall time: compare tokens_per_s.");
  return lines;
}

}  // namespace

absl::StatusOr<StudyReport> BuildStudyReport(const StudyPlan& plan, const std::string& out_dir) {
  StudyReport report;
  report.name = plan.name;
  bool any_rss = false, any_trainer_rss = false;
  for (const PlannedRun& run : plan.runs) {
    ReportRow row;
    row.run = run;
    const std::string dir = out_dir + "/" + run.name;
    absl::StatusOr<RunStatus> status = ReadRunStatus(dir);
    if (!status.ok()) return status.status();
    row.state = RunStateName(status->state());
    if (status->attempts() == 0) row.state = "not started";
    row.error = status->error().substr(0, status->error().find('\n'));
    if (status->peak_rss_kib() > 0) {
      row.peak_rss_mib = static_cast<double>(status->peak_rss_kib()) / 1024.0;
      any_rss = true;
    }
    absl::StatusOr<std::vector<MetricsRecord>> records = ReadMetricsFile(dir + "/metrics.jsonl");
    if (!records.ok() && !absl::IsNotFound(records.status())) return records.status();
    if (records.ok() && !records->empty()) {
      const MetricsRecord& last = records->back();
      row.steps_done = last.step;
      row.tokens = last.tokens;
      if (last.peak_rss_bytes > 0) {  // the trainer's own figure (every rank) wins over wait4's
        row.peak_rss_mib = last.peak_rss_bytes / (1024.0 * 1024.0);
        any_trainer_rss = true;
      }
      row.training_flops = static_cast<double>(last.tokens) * run.flops_per_token;
      row.final_loss = last.loss;
      std::vector<double> throughput;
      for (const MetricsRecord& r : *records) {
        if (r.val_loss.has_value()) {
          row.val_loss = r.val_loss;
          row.val_curve.emplace_back(static_cast<double>(r.tokens) * run.flops_per_token,
                                     *r.val_loss);
        }
        if (r.step > 1 || records->size() == 1) throughput.push_back(r.tokens_per_s);
      }
      if (!throughput.empty()) row.tokens_per_s = Median(throughput);
      if (row.val_loss.has_value() && plan.spec.bytes_per_token() > 0) {
        row.bits_per_byte = *row.val_loss / std::log(2.0) / plan.spec.bytes_per_token();
      }
      if (!last.ent_load.empty()) row.ent_load = Mean(last.ent_load);
      if (!last.load_max.empty()) {
        row.load_max_over_mean = Mean(last.load_max) * static_cast<double>(run.model.n_experts);
      }
    }
    report.rows.push_back(std::move(row));
  }

  // Power laws per model family over the finished runs' final held-out (else train) loss.
  std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> points;
  std::vector<std::string> order;
  for (const ReportRow& row : report.rows) {
    if (std::find(order.begin(), order.end(), row.run.model_family) == order.end()) {
      order.push_back(row.run.model_family);
    }
    const std::optional<double> loss = row.val_loss.has_value() ? row.val_loss : row.final_loss;
    if (row.state != "finished" || !loss.has_value()) continue;
    points[row.run.model_family].first.push_back(row.training_flops);
    points[row.run.model_family].second.push_back(*loss);
  }
  for (const std::string& family : order) {
    FamilyFit fit;
    fit.family = family;
    const auto& [compute, loss] = points[family];
    if (!compute.empty()) {
      fit.min_compute = *std::min_element(compute.begin(), compute.end());
      fit.max_compute = *std::max_element(compute.begin(), compute.end());
    }
    absl::StatusOr<PowerLawFit> fitted = FitPowerLaw(compute, loss);
    if (fitted.ok()) {
      fit.fit = *fitted;
    } else {
      fit.why_not = std::string(fitted.status().message());
    }
    report.fits.push_back(std::move(fit));
  }
  report.statement = Statement(report);
  if (plan.spec.bytes_per_token() <= 0) {
    report.notes.push_back(
        "bits_per_byte is empty: it needs the held-out text's bytes per token, which the metrics "
        "do not hold; measure it on the valid split and set bytes_per_token in the spec "
        "(synthetic data has no bytes at all).");
  }
  if (any_trainer_rss) {
    report.notes.push_back(
        "peak_rss_mib: the trainer's peak_rss_bytes at the last logged step, the largest peak "
        "resident set of any rank (getrusage), host memory only; runs from a trainer that did not "
        "log it fall back to the study's wait4 figure for the largest process of the job.");
  } else {
    report.notes.push_back(
        any_rss ? "peak_rss_mib is not logged by the trainer: it is the largest process of the job "
                  "(a rank, or mpirun) as the study's wait4 saw it, the largest over the launches "
                  "that ended under the study (a launch killed together with the study is missing)."
                : "peak_rss_mib is empty: the trainer does not log memory, and no launch ended "
                  "under the study's eyes (the study takes it from wait4).");
  }
  report.notes.push_back(
      "Held-out loss: val_loss, the mean loss over train.eval_steps fixed held-out micro-batches; "
      "the fits use it, or the final training loss for runs that never evaluated.");
  return report;
}

std::string ReportCsv(const StudyReport& report) {
  std::string csv =
      "name,family,ffn,n_experts,granularity,top_k,d_low,n_shared_experts,balancing,seed,"
      "width_field,width,total_params,active_params,flops_per_token,state,steps,tokens,"
      "training_flops,final_loss,val_loss,bits_per_byte,tokens_per_s,peak_rss_mib,ent_load,"
      "load_max_over_mean\n";
  for (const ReportRow& row : report.rows) {
    const PlannedRun& r = row.run;
    csv += absl::StrJoin({r.name,
                          r.model_family,
                          r.ffn,
                          absl::StrCat(r.n_experts),
                          absl::StrCat(r.granularity),
                          absl::StrCat(r.top_k),
                          absl::StrCat(r.d_low),
                          absl::StrCat(r.n_shared_experts),
                          r.balancing,
                          absl::StrCat(r.seed),
                          r.width_field,
                          absl::StrCat(r.width),
                          absl::StrCat(r.total_params),
                          absl::StrCat(r.active_params),
                          absl::StrCat(r.flops_per_token),
                          row.state,
                          absl::StrCat(row.steps_done),
                          absl::StrCat(row.tokens),
                          Number(row.training_flops),
                          Number(row.final_loss),
                          Number(row.val_loss),
                          Number(row.bits_per_byte),
                          Number(row.tokens_per_s),
                          Number(row.peak_rss_mib),
                          Number(row.ent_load),
                          Number(row.load_max_over_mean)},
                         ",") +
           "\n";
  }
  return csv;
}

std::string ReportMarkdown(const StudyReport& report) {
  auto cell = [](const std::optional<double>& v, const char* format) {
    return v.has_value() && std::isfinite(*v) ? absl::StrFormat(format, *v) : std::string("—");
  };
  std::string md = absl::StrFormat("# Study %s\n\n", report.name);
  md +=
      "| run | shape | width | total | active | FLOP/token | state | steps | tokens | train "
      "FLOPs | loss | val loss | bits/byte | tok/s | peak RSS MiB | Ent_load | max/mean |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const ReportRow& row : report.rows) {
    const PlannedRun& r = row.run;
    md += absl::StrFormat(
        "| %s | %s | %s=%d%s | %s | %s | %s | %s | %d/%d | %s | %s | %s | %s | %s | %s | %s | %s "
        "| %s |\n",
        r.name, r.model_family, r.width_field.substr(6), r.width, r.width_derived ? "*" : "",
        HumanCount(r.total_params), HumanCount(r.active_params), HumanCount(r.flops_per_token),
        row.state == "failed" ? absl::StrCat("failed: ", row.error) : row.state, row.steps_done,
        r.steps, HumanCount(row.tokens), HumanCount(row.training_flops),
        cell(row.final_loss, "%.4f"), cell(row.val_loss, "%.4f"), cell(row.bits_per_byte, "%.4f"),
        cell(row.tokens_per_s, "%.0f"), cell(row.peak_rss_mib, "%.0f"), cell(row.ent_load, "%.3f"),
        cell(row.load_max_over_mean, "%.3f"));
  }
  md += "\n`*`: width derived by the matching rule. Full precision: report.csv.\n\n";
  md += "## Power laws: held-out loss against training compute\n\n";
  md +=
      "| family | runs | compute values | a | b | se(a) | se(b) | R² "
      "|\n|---|---|---|---|---|---|---|---|\n";
  for (const FamilyFit& fit : report.fits) {
    if (fit.fit.has_value()) {
      const PowerLawFit& f = *fit.fit;
      md += absl::StrFormat("| %s | %d | %d | %.4g | %.4f | %.3g | %.4f | %.4f |\n", fit.family,
                            f.points, f.distinct_compute, f.a, f.b, f.se_a, f.se_b, f.r_squared);
    } else {
      md += absl::StrFormat("| %s | — | — | — | — | — | — | %s |\n", fit.family, fit.why_not);
    }
  }
  md += "\n## What these runs can and cannot support\n\n";
  for (const std::string& line : report.statement) md += "- " + line + "\n";
  md += "\n## Notes\n\n";
  for (const std::string& line : report.notes) md += "- " + line + "\n";
  md += "\n## Plots\n\n";
  if (!report.plots_note.empty()) md += report.plots_note + "\n";
  for (const std::string& plot : report.plots) {
    md += absl::StrFormat("![%s](%s)\n\n", plot, plot);
  }
  return md;
}

}  // namespace aoetron::study
