// What the trainer reports about an optimizer step, and its two renderings: one JSON object
// (metrics file, and stdout when it is not a terminal) and one human progress line.
//
// JSON keys (docs/training.md defines each):
//   step, loss, aux_loss, grad_norm, lr, tokens, tokens_per_s, model_tflops, step_ms, comm_ms,
//   comm_tp_ms, comm_ep_ms, comm_dp_ms, comm_edp_ms, comm_world_ms,
//   val_loss (only on steps that evaluated),
//   load_min, load_max, ent_load, ent_conf, layer_aux_loss, ep_load_max_over_mean (arrays, one
//   entry per layer; empty for a dense model),
//   ep_dispatch_payload_bytes, ep_dispatch_minimum_bytes, ep_exchange_bytes,
//   ep_exchange_bytes_max (only with expert parallelism).
// Non-finite values are written as null.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "models/expert_stats.h"

namespace aoetron {

// Wall seconds one rank spent inside collectives, per process group (Communicator::
// seconds_in_collectives differences). tp and ep are the model's own exchanges (tensor-parallel
// all-reduces and gathers, the expert dispatch and return all-to-alls, forward and backward);
// dp and edp the gradient sync (and ZeRO-1's parameter all-gather); world the trainer's loss,
// norm and stop agreements. Time waiting for a slower peer counts: it is time not computing.
struct CommSeconds {
  double tp = 0.0, ep = 0.0, dp = 0.0, edp = 0.0, world = 0.0;
  double total() const { return tp + ep + dp + edp + world; }
  CommSeconds& operator+=(const CommSeconds& o) {
    tp += o.tp, ep += o.ep, dp += o.dp, edp += o.edp, world += o.world;
    return *this;
  }
  CommSeconds operator-(const CommSeconds& o) const {
    return {tp - o.tp, ep - o.ep, dp - o.dp, edp - o.edp, world - o.world};
  }
  CommSeconds operator/(double d) const { return {tp / d, ep / d, dp / d, edp / d, world / d}; }
};

// One layer's expert load over a whole optimizer step (all its micro-batches).
struct LayerLoadSummary {
  double load_min = 0.0;  // min_i f̂_i, f̂_i = pairs routed to expert i / all pairs
  double load_max = 0.0;  // max_i f̂_i
  double ent_load = 0.0;  // −Σ f̂_i ln f̂_i
  double ent_conf = 0.0;  // mean over tokens of the entropy of the softmax over all n scores
  double aux_loss = 0.0;  // this layer's load-balancing loss, mean over micro-batches
  double z_loss = 0.0;    // this layer's router z-loss, mean over micro-batches (0 when off)
  // Expert-parallel balance: pairs routed to each ep rank's block of experts, max over the ep
  // ranks divided by their mean (1 = even; 1 with ep = 1). The slowest rank sets the pace.
  double ep_load_max_over_mean = 1.0;
};

// The expert all-to-alls of one optimizer step, per rank (sums over layers, micro-batches and
// forward+backward), averaged over the world's ranks unless named max. Zero with ep = 1.
struct DispatchSummary {
  double payload_bytes = 0.0;          // forward dispatch payload a rank sends (x rows, C_i/gates)
  double minimum_payload_bytes = 0.0;  // its analytic minimum (DispatchStats)
  double exchange_bytes = 0.0;         // everything a rank sends: payload, metadata, return, bwd
  double exchange_bytes_max = 0.0;     // the busiest rank's exchange_bytes
};

// Merges the per-layer stats of the micro-batches of one step: expert counts are summed (so
// f̂ and Ent_load describe the whole step's tokens), Ent_conf and aux_loss are averaged (every
// micro-batch has the same number of tokens). `per_micro_batch[m][l]` is layer l of
// micro-batch m; every micro-batch must list the same layers.
// `ep_size` groups the experts into that many equal blocks (one per ep rank) for
// ep_load_max_over_mean.
std::vector<LayerLoadSummary> SummariseExpertLoad(
    const std::vector<std::vector<ExpertLoadStats>>& per_micro_batch, int ep_size = 1);

struct StepMetrics {
  int64_t step = 0;         // optimizer steps completed, 1-based
  int64_t total_steps = 0;  // train.steps
  double loss = 0.0;        // mean cross-entropy over the step's micro-batches
  double aux_loss = 0.0;    // Σ over layers of the load-balancing loss, mean over micro-batches
  double grad_norm = 0.0;   // global L2 norm of the gradient before clipping
  double lr = 0.0;          // learning rate this step used
  int64_t tokens = 0;       // tokens trained so far, this step included
  // Over the steps since the previous logged step (evaluation time excluded):
  double step_seconds = 0.0;       // mean wall time per optimizer step
  CommSeconds comm;                // of which inside collectives, by group (mean per step)
  double tokens_per_s = 0.0;       // tokens trained per second
  double model_flops_per_s = 0.0;  // model FLOPs (models/flop_count.h) per second
  std::optional<double> val_loss;  // mean held-out loss, on steps that evaluated
  // The largest peak resident set (getrusage ru_maxrss) of any rank so far: host memory, whole
  // process (model, optimizer state, activations, buffers, libraries). 0 when not measured.
  int64_t peak_rss_bytes = 0;
  std::vector<LayerLoadSummary> layers;
  std::optional<DispatchSummary> dispatch;  // of the logged step; only with expert parallelism
};

std::string StepMetricsJson(const StepMetrics& metrics);
// "step 10/1000 | loss 4.1234 | aux 0.0101 | ..." without a trailing newline. Expert load is
// condensed over layers: the smallest load_min, the largest load_max, mean entropies.
std::string StepMetricsProgressLine(const StepMetrics& metrics);

}  // namespace aoetron
