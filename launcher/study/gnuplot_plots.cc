#include "launcher/study/gnuplot_plots.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "launcher/study/study_plan.h"

namespace aoetron::study {
namespace {

// gnuplot string literal: "..." with backslashes and quotes escaped.
std::string Quoted(const std::string& text) {
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return quoted + "\"";
}

struct FamilyPoint {
  std::vector<double> losses, throughput, rss;
};

}  // namespace

std::string FindGnuplot() {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  for (absl::string_view dir : absl::StrSplit(path, ':')) {
    if (dir.empty()) continue;
    const std::string candidate = absl::StrCat(dir, "/gnuplot");
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

void DrawStudyPlots(const std::string& report_dir, StudyReport* report) {
  const std::string gnuplot = FindGnuplot();
  if (gnuplot.empty()) {
    report->plots_note =
        "No plots: gnuplot is not on PATH (install gnuplot-nox, e.g. with scripts/setup.sh, and "
        "run `aoetron-study report` again).";
    return;
  }
  std::string script =
      "set terminal pngcairo size 960,640 noenhanced\n"
      "set grid\nset key outside right top\nset offsets graph 0.05, graph 0.05, graph 0.05, graph "
      "0.05\n";

  // 1. Held-out loss against training FLOPs, per run.
  {
    // One colour per model family (the shape with n), named once in the key: with dozens of
    // runs a key entry per run would cover the plot.
    std::ofstream data(report_dir + "/loss_vs_flops.dat");
    std::string plot;
    int block = 0;
    std::map<std::string, int> colour;
    for (const ReportRow& row : report->rows) {
      if (row.val_curve.empty()) continue;
      data << "# " << row.run.name << "\n";
      for (const auto& [flops, loss] : row.val_curve) data << flops << " " << loss << "\n";
      data << "\n\n";
      const auto [it, first] =
          colour.emplace(row.run.model_family, static_cast<int>(colour.size()) + 1);
      absl::StrAppend(
          &plot, block == 0 ? "plot " : ", ",
          absl::StrFormat("'loss_vs_flops.dat' index %d with linespoints linecolor %d %s", block,
                          it->second,
                          first ? absl::StrCat("title ", Quoted(row.run.model_family))
                                : std::string("notitle")));
      ++block;
    }
    if (block > 0) {
      // Compute on a log axis; the loss on a linear one (its range is a fraction of a decade,
      // where a log axis has no labelled tics). "fix": the axes end at the data.
      absl::StrAppend(&script,
                      "set output 'loss_vs_flops.png'\nset title 'held-out loss against "
                      "training compute (a line per run, a colour per model)'\n"
                      "set xlabel 'training FLOPs'\nset ylabel 'val_loss'\n"
                      "set logscale x\nset autoscale fix\n",
                      plot, "\nunset logscale\nset autoscale\n");
      report->plots.push_back("loss_vs_flops.png");
    }
  }

  // 2 and 3. Per family (the shape without n), against n_experts. Losses get one series per
  // family and budget when the runs have several budgets (seeds pooled, budgets never); speed
  // and memory do not depend on the budget, so there budgets are pooled too.
  std::map<int64_t, int> budgets;
  for (const ReportRow& row : report->rows) {
    if (row.state == "finished") ++budgets[row.run.tokens];
  }
  using Families = std::map<std::string, std::map<int64_t, FamilyPoint>>;
  auto collect = [&](bool split_budgets) {
    Families families;
    for (const ReportRow& row : report->rows) {
      if (row.state != "finished") continue;
      const int64_t n = row.run.model.is_moe() ? row.run.n_experts : 1;
      const std::string series =
          split_budgets && budgets.size() > 1
              ? absl::StrCat(row.run.family, ", ", HumanCount(static_cast<double>(row.run.tokens)),
                             " tokens")
              : row.run.family;
      FamilyPoint& point = families[series][n];
      if (row.val_loss.has_value()) point.losses.push_back(*row.val_loss);
      if (row.tokens_per_s.has_value()) point.throughput.push_back(*row.tokens_per_s);
      if (row.peak_rss_mib.has_value()) point.rss.push_back(*row.peak_rss_mib);
    }
    return families;
  };
  const Families loss_series = collect(/*split_budgets=*/true);
  const Families families = collect(/*split_budgets=*/false);
  auto write_family_data = [&](const Families& families, const std::string& file, auto member,
                               bool* any) {
    std::ofstream data(report_dir + "/" + file);
    std::string plot;
    int block = 0;
    for (const auto& [family, by_n] : families) {
      bool wrote = false;
      for (const auto& [n, point] : by_n) {
        const std::vector<double>& values = point.*member;
        if (values.empty()) continue;
        double sum = 0, lo = values.front(), hi = values.front();
        for (double v : values) sum += v, lo = std::min(lo, v), hi = std::max(hi, v);
        if (!wrote) data << "# " << family << "\n";
        data << n << " " << sum / static_cast<double>(values.size()) << " " << lo << " " << hi
             << "\n";
        wrote = true;
      }
      if (!wrote) continue;
      data << "\n\n";
      absl::StrAppend(&plot, block == 0 ? "plot " : ", ",
                      absl::StrFormat("'%s' index %d using 1:2:3:4 with yerrorlines title %s", file,
                                      block, Quoted(family)));
      ++block;
    }
    *any = block > 0;
    return plot;
  };
  bool any_loss = false, any_throughput = false, any_rss = false;
  const std::string loss_plot =
      write_family_data(loss_series, "loss_vs_experts.dat", &FamilyPoint::losses, &any_loss);
  if (any_loss) {
    absl::StrAppend(&script,
                    "set output 'loss_vs_experts.png'\nset title 'final held-out loss "
                    "(seed mean, bars min..max; dense at n = 1)'\n"
                    "set xlabel 'n_experts'\nset ylabel 'val_loss'\nset logscale x 2\n",
                    loss_plot, "\nunset logscale\n");
    report->plots.push_back("loss_vs_experts.png");
  }
  const std::string throughput_plot = write_family_data(families, "throughput_vs_experts.dat",
                                                        &FamilyPoint::throughput, &any_throughput);
  const std::string rss_plot =
      write_family_data(families, "memory_vs_experts.dat", &FamilyPoint::rss, &any_rss);
  if (any_throughput) {
    // Two panels: twice the height, so each keeps the others' proportions.
    absl::StrAppend(&script, any_rss ? "set terminal pngcairo size 960,1100 noenhanced\n" : "",
                    "set output 'throughput_vs_experts.png'\n");
    if (any_rss) absl::StrAppend(&script, "set multiplot layout 2,1\n");
    absl::StrAppend(&script,
                    "set title 'throughput against experts (median tokens/s per run)'\n"
                    "set xlabel 'n_experts'\nset ylabel 'tokens/s'\nset logscale x 2\n",
                    throughput_plot, "\n");
    if (any_rss) {
      absl::StrAppend(&script,
                      "set title 'peak RSS of the largest rank'\n"
                      "set ylabel 'MiB'\n",
                      rss_plot, "\nunset multiplot\n");
    }
    absl::StrAppend(&script, "unset logscale\n");
    report->plots.push_back("throughput_vs_experts.png");
  }
  {
    std::ofstream out(report_dir + "/plots.gp");
    out << script;
  }
  if (report->plots.empty()) {
    report->plots_note = "No plots: no finished run has logged anything to plot yet.";
    return;
  }
  const std::string command =
      absl::StrFormat("cd %s && %s plots.gp > plots.log 2>&1", Quoted(report_dir), Quoted(gnuplot));
  const int status = std::system(command.c_str());
  if (status != 0) {
    report->plots_note =
        absl::StrFormat("Plots failed: gnuplot exited with status %d; see %s/plots.log.",
                        WIFEXITED(status) ? WEXITSTATUS(status) : -1, report_dir);
    report->plots.clear();
  }
}

}  // namespace aoetron::study
