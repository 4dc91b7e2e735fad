// The study's PNG plots, drawn by gnuplot (Debian: gnuplot-nox; scripts/setup.sh installs it):
//   loss_vs_flops.png        held-out loss against training FLOPs so far, one line per run
//   loss_vs_experts.png      final held-out loss against n_experts, one line per family (the
//                            shape without n), mean over seeds with min..max bars; a dense
//                            model is drawn at n = 1
//   throughput_vs_experts.png  tokens/s (and peak RSS, when known) against n_experts per family
// The data (.dat) and the script (plots.gp) stay beside the PNGs, so a plot can be restyled by
// hand.
//
// Thread safety: runs gnuplot as a child process; one call at a time per directory.
#pragma once

#include <string>

#include "launcher/study/study_report.h"

namespace aoetron::study {

// The gnuplot executable on PATH, or "" when there is none.
std::string FindGnuplot();

// Writes the plots into `report_dir` and lists them in report->plots; when gnuplot is missing or
// fails, report->plots_note says so and nothing else happens (the tables do not depend on it).
void DrawStudyPlots(const std::string& report_dir, StudyReport* report);

}  // namespace aoetron::study
