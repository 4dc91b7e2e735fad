#include "launcher/step_metrics.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/check.h"
#include "launcher/json_writer.h"

namespace aoetron {

std::vector<LayerLoadSummary> SummariseExpertLoad(
    const std::vector<std::vector<ExpertLoadStats>>& per_micro_batch, int ep_size) {
  if (per_micro_batch.empty()) return {};
  const size_t layers = per_micro_batch.front().size();
  std::vector<LayerLoadSummary> summary(layers);
  const double micro_batches = static_cast<double>(per_micro_batch.size());
  for (size_t l = 0; l < layers; ++l) {
    std::vector<int64_t> counts;
    for (const std::vector<ExpertLoadStats>& micro_batch : per_micro_batch) {
      AOETRON_CHECK_EQ(micro_batch.size(), layers);
      const ExpertLoadStats& stats = micro_batch[l];
      if (counts.empty()) counts.assign(stats.tokens_per_expert.size(), 0);
      AOETRON_CHECK_EQ(counts.size(), stats.tokens_per_expert.size());
      for (size_t e = 0; e < counts.size(); ++e) counts[e] += stats.tokens_per_expert[e];
      summary[l].ent_conf += stats.entropy_confidence / micro_batches;
      summary[l].aux_loss += stats.aux_loss / micro_batches;
      summary[l].z_loss += stats.z_loss / micro_batches;
    }
    int64_t pairs = 0;
    for (const int64_t count : counts) pairs += count;
    if (pairs == 0) {
      // No counts reported: fall back to the single micro-batch's own figures.
      const ExpertLoadStats& stats = per_micro_batch.back()[l];
      summary[l].load_min = stats.load_fraction_min;
      summary[l].load_max = stats.load_fraction_max;
      summary[l].ent_load = stats.entropy_load;
      continue;
    }
    const LoadShareSummary shares = SummariseLoadShares(counts);
    summary[l].load_min = shares.min;
    summary[l].load_max = shares.max;
    summary[l].ent_load = shares.entropy;
    summary[l].ep_load_max_over_mean = EpLoadMaxOverMean(counts, ep_size);
  }
  return summary;
}

std::string StepMetricsJson(const StepMetrics& m) {
  JsonObjectWriter json;
  json.Integer("step", m.step)
      .Number("loss", m.loss)
      .Number("aux_loss", m.aux_loss)
      .Number("grad_norm", m.grad_norm)
      .Number("lr", m.lr)
      .Integer("tokens", m.tokens)
      .Number("tokens_per_s", m.tokens_per_s)
      .Number("model_tflops", m.model_flops_per_s / 1e12)
      .Number("step_ms", m.step_seconds * 1e3)
      .Number("comm_ms", m.comm.total() * 1e3)
      .Number("comm_tp_ms", m.comm.tp * 1e3)
      .Number("comm_ep_ms", m.comm.ep * 1e3)
      .Number("comm_dp_ms", m.comm.dp * 1e3)
      .Number("comm_edp_ms", m.comm.edp * 1e3)
      .Number("comm_world_ms", m.comm.world * 1e3);
  if (m.val_loss.has_value()) json.Number("val_loss", *m.val_loss);
  if (m.peak_rss_bytes > 0) json.Integer("peak_rss_bytes", m.peak_rss_bytes);
  std::vector<double> load_min, load_max, ent_load, ent_conf, aux, z, ep_load;
  for (const LayerLoadSummary& layer : m.layers) {
    ep_load.push_back(layer.ep_load_max_over_mean);
    load_min.push_back(layer.load_min);
    load_max.push_back(layer.load_max);
    ent_load.push_back(layer.ent_load);
    ent_conf.push_back(layer.ent_conf);
    aux.push_back(layer.aux_loss);
    z.push_back(layer.z_loss);
  }
  json.NumberArray("load_min", load_min)
      .NumberArray("load_max", load_max)
      .NumberArray("ent_load", ent_load)
      .NumberArray("ent_conf", ent_conf)
      .NumberArray("layer_aux_loss", aux)
      .NumberArray("layer_z_loss", z)
      .NumberArray("ep_load_max_over_mean", ep_load);
  if (m.dispatch.has_value()) {
    json.Number("ep_dispatch_payload_bytes", m.dispatch->payload_bytes)
        .Number("ep_dispatch_minimum_bytes", m.dispatch->minimum_payload_bytes)
        .Number("ep_exchange_bytes", m.dispatch->exchange_bytes)
        .Number("ep_exchange_bytes_max", m.dispatch->exchange_bytes_max);
  }
  return json.Finish();
}

std::string StepMetricsProgressLine(const StepMetrics& m) {
  std::string line = absl::StrFormat(
      "step %*d/%d | loss %.4f | aux %.4f | gnorm %.3f | lr %.2e | %.0f tok/s | %.3f TFLOP/s | "
      "%.1f ms (comm %.1f",
      static_cast<int>(absl::StrCat(m.total_steps).size()), m.step, m.total_steps, m.loss,
      m.aux_loss, m.grad_norm, m.lr, m.tokens_per_s, m.model_flops_per_s / 1e12,
      m.step_seconds * 1e3, m.comm.total() * 1e3);
  // The groups that communicated, e.g. "(comm 55.9: ep 48.7 dp 6.9 world 0.2)".
  const std::pair<const char*, double> groups[] = {{"tp", m.comm.tp},
                                                   {"ep", m.comm.ep},
                                                   {"dp", m.comm.dp},
                                                   {"edp", m.comm.edp},
                                                   {"world", m.comm.world}};
  const char* separator = ": ";
  for (const auto& [name, seconds] : groups) {
    if (seconds <= 0.0) continue;
    absl::StrAppendFormat(&line, "%s%s %.1f", separator, name, seconds * 1e3);
    separator = " ";
  }
  line += ")";
  if (!m.layers.empty()) {
    double load_min = 1.0, load_max = 0.0, ent_load = 0.0, ent_conf = 0.0;
    for (const LayerLoadSummary& layer : m.layers) {
      load_min = std::min(load_min, layer.load_min);
      load_max = std::max(load_max, layer.load_max);
      ent_load += layer.ent_load / static_cast<double>(m.layers.size());
      ent_conf += layer.ent_conf / static_cast<double>(m.layers.size());
    }
    absl::StrAppendFormat(&line, " | load %.3f..%.3f | Ent_load %.3f | Ent_conf %.3f", load_min,
                          load_max, ent_load, ent_conf);
  }
  if (m.dispatch.has_value()) {
    // "| ep 8.4 MB/rank (min 8.4), all 17.1 MB, ranks ×1.06": payload against its minimum, all
    // expert traffic, and the worst layer's max/mean load over the ep ranks.
    double worst = 1.0;
    for (const LayerLoadSummary& layer : m.layers) {
      worst = std::max(worst, layer.ep_load_max_over_mean);
    }
    absl::StrAppendFormat(&line, " | ep %.2f MB/rank (min %.2f), all %.2f MB, ranks ×%.3f",
                          m.dispatch->payload_bytes / 1e6, m.dispatch->minimum_payload_bytes / 1e6,
                          m.dispatch->exchange_bytes / 1e6, worst);
  }
  if (m.val_loss.has_value()) absl::StrAppendFormat(&line, " | val_loss %.4f", *m.val_loss);
  return line;
}

}  // namespace aoetron
