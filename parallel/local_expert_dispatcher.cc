#include "parallel/local_expert_dispatcher.h"

#include "core/ops/elementwise.h"

namespace aoetron::parallel {

LocalExpertDispatcher::LocalExpertDispatcher(int64_t num_experts, int64_t d_model,
                                             int64_t gate_width)
    : ExpertDispatcher(/*ep_rank=*/0, /*ep_size=*/1, num_experts, d_model, gate_width) {}

void LocalExpertDispatcher::DispatchStages(std::span<const int64_t> keep_limit,
                                           ActivationArena& arena) {
  const int64_t pairs = expert_index_.numel();
  // D1. pairs grouped by expert, token order inside a block; dropped pairs after every block.
  layout_ = ops::BuildExpertLayout(expert_index_, num_experts_, keep_limit);
  const int64_t kept = layout_.offsets.back();
  // D3/D5. rows straight into the expert blocks.
  x_grouped_full_ = arena.Allocate({pairs, d_model_}, x_.dtype());
  ops::PermuteRows(x_, layout_.position, x_grouped_full_);
  batch_.x = x_grouped_full_.Rows(0, kept);
  batch_.gate = batch_.x;
  if (gate_width_ > 0) {
    Tensor gate_full = arena.Allocate({pairs, gate_width_}, x_.dtype());
    // Slot (t, j) of the [N, K·g] cache is row t·K + j of it seen as [N·K, g]: a permute with
    // one "token" per pair.
    ops::PermuteRows(gate_cache_.Reshape({pairs, gate_width_}),
                     layout_.position.Reshape({pairs, 1}), gate_full);
    batch_.gate = gate_full.Rows(0, kept);
  }
  batch_.offsets = layout_.offsets;
  out_grouped_full_ = arena.Allocate({pairs, d_model_}, x_.dtype());
  if (kept < pairs) {
    Tensor dropped = out_grouped_full_.Rows(kept, pairs);
    ops::Fill(dropped, 0.0);  // a dropped pair's output is zero
  }
  batch_.out = out_grouped_full_.Rows(0, kept);
  stats_.kept_pairs = kept;
  stats_.dropped_pairs = pairs - kept;
  stats_.received_pairs = kept;
}

void LocalExpertDispatcher::Combine(const Tensor& gate_weights, Tensor& y, ActivationArena&) {
  // D7. (D6 is nothing: the outputs are already here.)
  ops::CombineRows(out_grouped_full_, layout_.position, gate_weights, y);
}

ExpertBatchGradients LocalExpertDispatcher::CombineBackward(const Tensor& dy,
                                                            const Tensor& gate_weights,
                                                            Tensor& d_gate_weights,
                                                            ActivationArena& arena) {
  const int64_t d = d_model_, g = gate_width_, pairs = expert_index_.numel();
  const int64_t kept = layout_.offsets.back();
  const DType dtype = x_.dtype();
  ExpertBatchGradients grads;
  // D7'. dY per pair (dropped pairs' rows are computed and ignored) and dw.
  Tensor d_out_full = arena.Allocate({pairs, d}, dtype);
  ops::Fill(d_out_full, 0.0);
  ops::CombineRowsBackward(dy, out_grouped_full_, layout_.position, gate_weights, d_out_full,
                           d_gate_weights);
  grads.d_out = d_out_full.Rows(0, kept);
  // Full-height gradient buffers, so DispatchBackward's ops see every pair (dropped: zero).
  dx_grouped_full_ = arena.Allocate({pairs, d}, dtype);
  ops::Fill(dx_grouped_full_, 0.0);
  grads.dx = dx_grouped_full_.Rows(0, kept);
  grads.dgate = grads.dx;
  if (g > 0) {
    dgate_grouped_full_ = arena.Allocate({pairs, g}, dtype);
    ops::Fill(dgate_grouped_full_, 0.0);
    grads.dgate = dgate_grouped_full_.Rows(0, kept);
  }
  return grads;
}

void LocalExpertDispatcher::DispatchBackward(const ExpertBatchGradients&, Tensor& dx,
                                             Tensor& d_gate_cache, ActivationArena&) {
  // D5'. the full-height buffers behind grads (dropped pairs' rows are zero).
  ops::PermuteRowsBackward(dx_grouped_full_, layout_.position, dx);
  if (gate_width_ > 0) {
    Tensor d_slots = d_gate_cache.Reshape({expert_index_.numel(), gate_width_});
    ops::PermuteRowsBackward(dgate_grouped_full_, layout_.position.Reshape({d_slots.dim(0), 1}),
                             d_slots);
  }
}

}  // namespace aoetron::parallel
