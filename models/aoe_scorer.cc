#include "models/aoe_scorer.h"

#include <algorithm>

#include "core/ops/column_block.h"
#include "core/ops/elementwise.h"
#include "core/ops/expert_slices.h"
#include "core/ops/gemm.h"
#include "core/ops/grouped_l2_norm.h"

namespace aoetron {
namespace {

// The leading `shape` elements of a scratch tensor, as a dense tensor of that shape (the last,
// narrower block reuses the full block's scratch).
Tensor Leading(const Tensor& scratch, Shape shape) {
  return scratch.Reshape({scratch.numel()}).Rows(0, NumElements(shape)).Reshape(std::move(shape));
}

}  // namespace

AoeScorer::AoeScorer(ParameterSet* params, const std::string& prefix, int64_t d_model,
                     int64_t n_experts, int64_t d_low, double init_std, AoeMemory memory,
                     int64_t score_block)
    : params_(params),
      d_model_(d_model),
      n_experts_(n_experts),
      d_low_(d_low),
      memory_(memory),
      block_(AoeScoreBlock(n_experts, d_low, score_block)) {
  Parameter p;
  p.name = prefix + ".w_down";
  p.global_shape = {d_model, n_experts * d_low};
  p.init_std = init_std;
  w_down_ = params->Add(std::move(p));
}

Tensor AoeScorer::Forward(const Tensor& x, ActivationArena& arena) {
  const int64_t tokens = x.dim(0);
  x_ = x;
  c_ = Tensor();
  top_index_ = Tensor();
  norms_ = arena.Allocate({tokens, n_experts_}, AccumulationDType(params_->dtype()));
  if (memory_ == AoeMemory::kBlockwise) {
    ForwardBlockwise(arena);
    return norms_;
  }
  c_ = arena.Allocate({tokens, n_experts_ * d_low_}, params_->dtype());
  ops::Gemm(x, false, (*params_)[w_down_].value, false, c_);  // ONE GEMM for all experts
  ops::GroupedL2Norm(c_, d_low_, norms_);
  return norms_;
}

// For each block b of B experts [e0, e0 + B):  C_b = x·Ŵ_down[:, e0·r : (e0+B)·r]  [N, B·r],
// p[:, e0 : e0+B] = grouped norms of C_b. The scratch is released before returning.
void AoeScorer::ForwardBlockwise(ActivationArena& arena) {
  const int64_t tokens = x_.dim(0), r = d_low_, n = n_experts_;
  const Tensor& w = (*params_)[w_down_].value;
  const ActivationArena::Position mark = arena.Mark();
  const bool single = block_ >= n;
  Tensor w_scratch, c_scratch, norm_scratch;
  if (!single) w_scratch = arena.Allocate({d_model_, block_ * r}, w.dtype());
  c_scratch = arena.Allocate({tokens, block_ * r}, params_->dtype());
  if (!single) norm_scratch = arena.Allocate({tokens, block_}, norms_.dtype());
  for (int64_t e0 = 0; e0 < n; e0 += block_) {
    const int64_t b = std::min(block_, n - e0);
    Tensor c_b = Leading(c_scratch, {tokens, b * r});
    if (single) {
      ops::Gemm(x_, false, w, false, c_b);
      ops::GroupedL2Norm(c_b, r, norms_);
      continue;
    }
    Tensor w_b = Leading(w_scratch, {d_model_, b * r});
    ops::CopyColumns(w, e0 * r, w_b, 0, b * r);
    ops::Gemm(x_, false, w_b, false, c_b);
    Tensor norms_b = Leading(norm_scratch, {tokens, b});
    ops::GroupedL2Norm(c_b, r, norms_b);
    ops::CopyColumns(norms_b, 0, norms_, e0, b);
  }
  arena.Rewind(mark);
}

// out[t, j·r : (j+1)·r] = C_e[t], e = top_index[t, j]: taken from the kept C, or recomputed.
Tensor AoeScorer::SelectedGateCache(const Tensor& top_index, ActivationArena& arena) {
  AOETRON_CHECK(x_.defined() && top_index.rank() == 2 && top_index.dim(0) == x_.dim(0))
      << "AoeScorer::SelectedGateCache: top_index " << top_index.DebugString() << " for x "
      << x_.DebugString() << " (call Forward first)";
  top_index_ = top_index;
  Tensor out = arena.Allocate({x_.dim(0), top_index.dim(1) * d_low_}, params_->dtype());
  if (memory_ == AoeMemory::kKeepAll) {
    ops::TakeExpertSlices(c_, top_index, out);
  } else {
    ops::ExpertSliceProduct(x_, (*params_)[w_down_].value, top_index, out);
  }
  return out;
}

void AoeScorer::Backward(const Tensor& dscores, Tensor& d_gate_cache, Tensor& dx,
                         ActivationArena& arena) {
  AOETRON_CHECK(top_index_.defined() && d_gate_cache.defined() &&
                d_gate_cache.shape() == Shape({x_.dim(0), top_index_.dim(1) * d_low_}))
      << "AoeScorer::Backward: d_gate_cache " << d_gate_cache.DebugString() << " for "
      << top_index_.dim(1) << " selected slices of width " << d_low_
      << " per token (SelectedGateCache must run in Forward)";
  const ActivationArena::Position mark = arena.Mark();
  if (memory_ == AoeMemory::kKeepAll) {
    BackwardKeepAll(dscores, d_gate_cache, dx, arena);
  } else {
    BackwardBlockwise(dscores, d_gate_cache, dx, arena);
  }
  arena.Rewind(mark);
}

// dC [N, n·r] = the selected pairs' dC_i (path 2) + dp_i · C_i/‖C_i‖ (paths 1 and 3).
void AoeScorer::BackwardKeepAll(const Tensor& dscores, const Tensor& d_gate_cache, Tensor& dx,
                                ActivationArena& arena) {
  Tensor dc = arena.Allocate(c_.shape(), c_.dtype());
  ops::Fill(dc, 0.0);
  ops::TakeExpertSlicesBackward(d_gate_cache, top_index_, n_experts_, 0, dc);
  ops::GroupedL2NormBackward(dscores, c_, norms_, d_low_, dc);
  Parameter& w = (*params_)[w_down_];
  ops::Gemm(x_, true, dc, false, w.grad, 1.0f, 1.0f);
  ops::Gemm(dc, false, w.value, true, dx, 1.0f, 1.0f);
}

// Per block b of experts [e0, e0 + B), W_b = Ŵ_down[:, e0·r : (e0+B)·r]:
//   C_b  = x·W_b                                        (recomputed)
//   dC_b = selected pairs' dC_i in their expert's columns + dp_i · C_i/‖C_i‖
//   dŴ_down[:, block] += xᵀ dC_b,   dx += dC_b W_bᵀ
void AoeScorer::BackwardBlockwise(const Tensor& dscores, const Tensor& d_gate_cache, Tensor& dx,
                                  ActivationArena& arena) {
  const int64_t tokens = x_.dim(0), r = d_low_, n = n_experts_;
  Parameter& w = (*params_)[w_down_];
  const DType dtype = params_->dtype();
  const bool single = block_ >= n;
  Tensor w_scratch, dw_scratch, dscore_scratch, norm_scratch;
  if (!single) {
    w_scratch = arena.Allocate({d_model_, block_ * r}, w.value.dtype());
    dw_scratch = arena.Allocate({d_model_, block_ * r}, w.grad.dtype());
    dscore_scratch = arena.Allocate({tokens, block_}, dscores.dtype());
    norm_scratch = arena.Allocate({tokens, block_}, norms_.dtype());
  }
  Tensor c_scratch = arena.Allocate({tokens, block_ * r}, dtype);
  Tensor dc_scratch = arena.Allocate({tokens, block_ * r}, dtype);
  for (int64_t e0 = 0; e0 < n; e0 += block_) {
    const int64_t b = std::min(block_, n - e0);
    Tensor c_b = Leading(c_scratch, {tokens, b * r});
    Tensor dc_b = Leading(dc_scratch, {tokens, b * r});
    Tensor w_b = w.value, dscores_b = dscores, norms_b = norms_;
    if (!single) {
      w_b = Leading(w_scratch, {d_model_, b * r});
      ops::CopyColumns(w.value, e0 * r, w_b, 0, b * r);
      dscores_b = Leading(dscore_scratch, {tokens, b});
      ops::CopyColumns(dscores, e0, dscores_b, 0, b);
      norms_b = Leading(norm_scratch, {tokens, b});
      ops::CopyColumns(norms_, e0, norms_b, 0, b);
    }
    ops::Gemm(x_, false, w_b, false, c_b);
    ops::Fill(dc_b, 0.0);
    ops::TakeExpertSlicesBackward(d_gate_cache, top_index_, n, e0, dc_b);  // path 2
    ops::GroupedL2NormBackward(dscores_b, c_b, norms_b, r, dc_b);          // paths 1 and 3
    if (single) {
      ops::Gemm(x_, true, dc_b, false, w.grad, 1.0f, 1.0f);
    } else {
      Tensor dw_b = Leading(dw_scratch, {d_model_, b * r});
      ops::Gemm(x_, true, dc_b, false, dw_b);
      ops::AddColumns(dw_b, 0, w.grad, e0 * r, b * r);
    }
    ops::Gemm(dc_b, false, w_b, true, dx, 1.0f, 1.0f);
  }
}

}  // namespace aoetron
