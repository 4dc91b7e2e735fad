#include "parallel/expert_dispatcher.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>

#include "core/check.h"
#include "core/device_transfer.h"
#include "core/ops/elementwise.h"
#include "core/ops/row_movement.h"

namespace aoetron::parallel {
namespace {

// Seconds spent in a scope, added to a counter.
class ScopedSeconds {
 public:
  explicit ScopedSeconds(double* total) : total_(total), start_(Clock::now()) {}
  ~ScopedSeconds() { *total_ += std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  using Clock = std::chrono::steady_clock;
  double* total_;
  Clock::time_point start_;
};

// Sum of counts[p] · weight over the peers p other than `self`.
int64_t PeerSum(const std::vector<int64_t>& counts, int self, int64_t weight) {
  int64_t total = 0;
  for (int p = 0; p < static_cast<int>(counts.size()); ++p) {
    if (p != self) total += counts[p] * weight;
  }
  return total;
}

// A host vector seen as a 1-D cpu tensor (no copy; valid while the vector is unchanged).
template <typename T>
Tensor HostView(const std::vector<T>& values) {
  return Tensor::Wrap(const_cast<T*>(values.data()), {static_cast<int64_t>(values.size())},
                      DTypeOf<T>::value);
}

// A copy of host index data in the arena, on the arena's (the activations') device. The layout's
// index vectors go over once per Dispatch (a few i32 per pair); every pack and unpack is then a
// core/ops row move.
Tensor CopyIntoArena(const Tensor& host, ActivationArena& arena) {
  Tensor copy = arena.Allocate(host.shape(), host.dtype());
  if (copy.numel() > 0) CopyAcrossDevices(host, copy);
  return copy;
}

std::vector<int64_t> PrefixSum(const std::vector<int64_t>& counts) {
  std::vector<int64_t> offset(counts.size() + 1, 0);
  for (size_t p = 0; p < counts.size(); ++p) offset[p + 1] = offset[p] + counts[p];
  return offset;
}

}  // namespace

ExpertDispatcher::ExpertDispatcher(Communicator& ep, int64_t num_experts, int64_t d_model,
                                   int64_t gate_width, Mode mode)
    : ep_(&ep),
      num_experts_(num_experts),
      d_model_(d_model),
      gate_width_(gate_width),
      local_(mode == Mode::kAuto && ep.size() == 1),
      unit_(std::gcd(d_model, gate_width)) {
  AOETRON_CHECK(num_experts >= 1 && num_experts % ep.size() == 0)
      << "ExpertDispatcher: " << num_experts << " experts do not split over the " << ep.size()
      << " ranks of the expert-parallel group";
  AOETRON_CHECK(d_model >= 1 && gate_width >= 0)
      << "ExpertDispatcher: d_model " << d_model << ", gate width " << gate_width;
}

ExpertBatch ExpertDispatcher::Dispatch(const Tensor& x, const Tensor& expert_index,
                                       const Tensor& gate_cache,
                                       std::span<const int64_t> keep_limit,
                                       ActivationArena& arena) {
  AOETRON_CHECK(x.rank() == 2 && x.dim(1) == d_model_ && expert_index.rank() == 2 &&
                expert_index.dim(0) == x.dim(0))
      << "ExpertDispatcher::Dispatch: x " << x.DebugString() << ", expert_index "
      << expert_index.DebugString() << " (d_model " << d_model_ << ")";
  AOETRON_CHECK(gate_width_ == 0
                    ? !gate_cache.defined()
                    : gate_cache.defined() && gate_cache.dtype() == x.dtype() &&
                          gate_cache.shape() == Shape({x.dim(0), num_experts_ * gate_width_}))
      << "ExpertDispatcher::Dispatch: gate cache " << gate_cache.DebugString() << " for gate width "
      << gate_width_ << " and " << num_experts_ << " experts";
  x_ = x;
  expert_index_ = expert_index;
  gate_cache_ = gate_cache;
  stats_ = DispatchStats{};
  if (local_) {
    DispatchLocal(x, expert_index, gate_cache, keep_limit, arena);
  } else {
    DispatchAllToAll(x, expert_index, gate_cache, keep_limit, arena);
  }
  return batch_;
}

// ---- The single-rank path: today's permute, no copies beyond it ------------------------------

void ExpertDispatcher::DispatchLocal(const Tensor& x, const Tensor& expert_index,
                                     const Tensor& gate_cache, std::span<const int64_t> keep_limit,
                                     ActivationArena& arena) {
  const int64_t pairs = expert_index.numel();
  // D1. pairs grouped by expert, token order inside a block; dropped pairs after every block.
  local_layout_ = ops::BuildExpertLayout(expert_index, num_experts_, keep_limit);
  const int64_t kept = local_layout_.offsets.back();
  // D3/D5. rows straight into the expert blocks.
  x_grouped_full_ = arena.Allocate({pairs, d_model_}, x.dtype());
  ops::PermuteRows(x, local_layout_.position, x_grouped_full_);
  batch_.x = x_grouped_full_.Rows(0, kept);
  batch_.gate = batch_.x;
  if (gate_width_ > 0) {
    Tensor gate_full = arena.Allocate({pairs, gate_width_}, x.dtype());
    ops::GatherExpertSlices(gate_cache, expert_index, local_layout_.position, gate_full);
    batch_.gate = gate_full.Rows(0, kept);
  }
  batch_.offsets = local_layout_.offsets;
  out_grouped_full_ = arena.Allocate({pairs, d_model_}, x.dtype());
  if (kept < pairs) {
    Tensor dropped = out_grouped_full_.Rows(kept, pairs);
    ops::Fill(dropped, 0.0);  // a dropped pair's output is zero
  }
  batch_.out = out_grouped_full_.Rows(0, kept);
  stats_.kept_pairs = kept;
  stats_.dropped_pairs = pairs - kept;
  stats_.received_pairs = kept;
}

// ---- The all-to-all path ----------------------------------------------------------------------

void ExpertDispatcher::CountMinimumPayload(const Tensor& host_index, int64_t element_bytes) {
  // Straight from the routing (not from the layout): a kept pair of token t for a peer p costs
  // its g gate values; t's x row costs d once per peer it has a kept pair on. host_index is the
  // host copy of the expert indices that the layout was built from.
  const int64_t n = host_index.dim(0), k = host_index.dim(1);
  const int32_t* index = host_index.data<int32_t>();
  const int ep = ep_->size(), self = ep_->rank();
  const int64_t per_rank = num_experts_ / ep;
  std::vector<int64_t> budget;
  if (layout_.dropped_pairs() > 0) {
    // Re-derive the kept pairs from the capacity rule: first come, first kept, per expert.
    budget.assign(num_experts_, 0);
    for (int64_t s = 0; s < layout_.kept_pairs(); ++s) ++budget[layout_.slot_expert[s]];
  }
  std::vector<char> touched(ep);
  int64_t token_rows = 0, gate_rows = 0;
  for (int64_t t = 0; t < n; ++t) {
    std::fill(touched.begin(), touched.end(), 0);
    for (int64_t j = 0; j < k; ++j) {
      const int32_t e = index[t * k + j];
      if (!budget.empty() && budget[e]-- <= 0) continue;  // dropped
      const int p = static_cast<int>(e / per_rank);
      if (p == self) continue;
      ++gate_rows;
      if (!touched[p]) ++token_rows;
      touched[p] = 1;
    }
  }
  stats_.minimum_payload_bytes = (token_rows * d_model_ + gate_rows * gate_width_) * element_bytes;
}

Tensor ExpertDispatcher::PeerBlock(const Tensor& payload, int64_t first_unit, int64_t rows,
                                   int64_t width) const {
  const int64_t units = rows * width / unit_;
  return payload.Rows(first_unit, first_unit + units).Reshape({rows, width});
}

Tensor ExpertDispatcher::MetadataWords(const Tensor& payload, int64_t first_unit, int64_t pairs,
                                       int64_t element_bytes) const {
  const int64_t units = MetadataUnits(pairs, element_bytes);
  const int64_t words = units * unit_ * element_bytes / static_cast<int64_t>(sizeof(int32_t));
  return payload.Rows(first_unit, first_unit + units).ViewAs(DType::kI32, {words});
}

void ExpertDispatcher::DispatchAllToAll(const Tensor& x, const Tensor& expert_index,
                                        const Tensor& gate_cache,
                                        std::span<const int64_t> keep_limit,
                                        ActivationArena& arena) {
  const int ep = ep_->size(), self = ep_->rank();
  const int64_t d = d_model_, g = gate_width_;
  const int64_t element_bytes = static_cast<int64_t>(SizeOf(x.dtype()));

  // D1. layout, on the host from the N·K expert indices (copied over unless they are cpu
  //     tensors already, as ops::BuildExpertLayout does).
  const Tensor host_index =
      expert_index.device().is_cpu() ? expert_index : CopyToDevice(expert_index, Device::Cpu());
  BuildDispatchLayout(host_index, num_experts_, ep, keep_limit, layout_);
  CountMinimumPayload(host_index, element_bytes);
  const int64_t kept = layout_.kept_pairs();
  sent_token_ = CopyIntoArena(HostView(layout_.sent_token), arena);
  pair_slot_ = CopyIntoArena(layout_.pair_slot, arena);
  if (g > 0) {
    // Row of each kept pair's C_i in the gate cache seen as [N·n, g]: t·n + e.
    std::vector<int32_t> gate_row(kept);
    for (int64_t s = 0; s < kept; ++s) {
      gate_row[s] =
          static_cast<int32_t>(layout_.slot_token[s] * num_experts_ + layout_.slot_expert[s]);
    }
    gate_cache_row_ = CopyIntoArena(HostView(gate_row), arena);
  }

  // D2. counts: (distinct tokens, pairs) for every peer, both ways. (The only exchange before
  //     the payload: everything else a receiver needs travels inside the payload.)
  std::vector<int64_t> send_counts(2 * ep), recv_counts(2 * ep);
  for (int p = 0; p < ep; ++p) {
    send_counts[2 * p] = layout_.send_tokens[p];
    send_counts[2 * p + 1] = layout_.send_pairs[p];
  }
  const std::vector<int64_t> one_row_each(ep, 1);
  {
    ScopedSeconds timer(&stats_.forward_exchange_seconds);
    ep_->AllToAllV(Tensor::Wrap(send_counts.data(), {ep, 2}, DType::kI64), one_row_each,
                   Tensor::Wrap(recv_counts.data(), {ep, 2}, DType::kI64), one_row_each);
  }
  recv_tokens_.resize(ep);
  recv_pairs_.resize(ep);
  send_units_.resize(ep);
  recv_units_.resize(ep);
  std::vector<int64_t> send_forward_units(ep), recv_forward_units(ep);
  for (int p = 0; p < ep; ++p) {
    recv_tokens_[p] = recv_counts[2 * p];
    recv_pairs_[p] = recv_counts[2 * p + 1];
    send_units_[p] = PayloadElements(layout_.send_tokens[p], layout_.send_pairs[p]) / unit_;
    recv_units_[p] = PayloadElements(recv_tokens_[p], recv_pairs_[p]) / unit_;
    send_forward_units[p] = MetadataUnits(layout_.send_pairs[p], element_bytes) + send_units_[p];
    recv_forward_units[p] = MetadataUnits(recv_pairs_[p], element_bytes) + recv_units_[p];
  }
  recv_token_offset_ = PrefixSum(recv_tokens_);
  recv_pair_offset_ = PrefixSum(recv_pairs_);
  send_unit_offset_ = PrefixSum(send_units_);
  recv_unit_offset_ = PrefixSum(recv_units_);
  const std::vector<int64_t> send_forward_offset = PrefixSum(send_forward_units);
  const std::vector<int64_t> recv_forward_offset = PrefixSum(recv_forward_units);
  const int64_t received = recv_pair_offset_.back();

  // D3. permute into the send payload: per peer p, the pair metadata (i32 pairs, their bytes
  //     padded to whole payload rows), its distinct tokens' x rows, then its pairs' gate rows:
  //       [metadata: ceil(8·pairs_p / (unit·b)) rows][x: tokens_p · d][gate: pairs_p · g]
  //     One exchange carries all three; the bytes are moved, never converted, so the i32 values
  //     arrive intact.
  Tensor send_payload = arena.Allocate({send_forward_offset.back(), unit_}, x.dtype());
  Tensor recv_payload = arena.Allocate({recv_forward_offset.back(), unit_}, x.dtype());
  for (int p = 0; p < ep; ++p) {
    const int64_t tokens = layout_.send_tokens[p], pairs = layout_.send_pairs[p];
    // The padding after the metadata is zeroed, so the bytes sent are defined.
    Tensor words = MetadataWords(send_payload, send_forward_offset[p], pairs, element_bytes);
    ops::Fill(words, 0.0);
    Tensor metadata = words.Rows(0, 2 * pairs);
    const int64_t first_word = 2 * layout_.send_pair_offset[p];
    CopyAcrossDevices(HostView(layout_.slot_metadata).Rows(first_word, first_word + 2 * pairs),
                      metadata);
    const int64_t x_unit = send_forward_offset[p] + MetadataUnits(pairs, element_bytes);
    Tensor x_rows = PeerBlock(send_payload, x_unit, tokens, d);
    ops::CopyRows(x,
                  sent_token_.Rows(layout_.send_token_offset[p], layout_.send_token_offset[p + 1]),
                  x_rows, Tensor());
    if (g == 0) continue;
    Tensor gate_rows = PeerBlock(send_payload, x_unit + tokens * d / unit_, pairs, g);
    ops::CopyRows(
        gate_cache.Reshape({x.dim(0) * num_experts_, g}),
        gate_cache_row_.Rows(layout_.send_pair_offset[p], layout_.send_pair_offset[p + 1]),
        gate_rows, Tensor());
  }

  // D4. exchange: metadata and payload in one AllToAllV.
  {
    ScopedSeconds timer(&stats_.forward_exchange_seconds);
    ep_->AllToAllV(send_payload, send_forward_units, recv_payload, recv_forward_units);
  }
  // The received pair metadata comes to the host (8 bytes per pair): it sizes the expert blocks.
  recv_metadata_.resize(2 * received);
  for (int s = 0; s < ep; ++s) {
    const Tensor words =
        MetadataWords(recv_payload, recv_forward_offset[s], recv_pairs_[s], element_bytes);
    Tensor host =
        HostView(recv_metadata_).Rows(2 * recv_pair_offset_[s], 2 * recv_pair_offset_[s + 1]);
    CopyAcrossDevices(words.Rows(0, 2 * recv_pairs_[s]), host);
  }

  // D5. regroup by local expert: a stable counting sort of the received pairs (source rank,
  //     then token, then j: global token order inside each expert block).
  const int64_t experts_here = local_experts();
  std::vector<int64_t> counts(experts_here, 0);
  for (int64_t q = 0; q < received; ++q) {
    const int32_t e = recv_metadata_[2 * q];
    AOETRON_CHECK(e >= 0 && e < experts_here) << "ExpertDispatcher: received local expert " << e
                                              << " outside [0, " << experts_here << ")";
    ++counts[e];
  }
  batch_.offsets = PrefixSum(counts);
  grouped_row_.resize(received);
  {
    std::vector<int64_t> cursor(batch_.offsets.begin(), batch_.offsets.end() - 1);
    for (int64_t q = 0; q < received; ++q) {
      grouped_row_[q] = static_cast<int32_t>(cursor[recv_metadata_[2 * q]]++);
    }
  }
  // The pairs of one received token are consecutive (sources send in (token, j) order):
  // token_first_pair_ is a CSR over them, used to sum each token's dX in backward.
  const int64_t received_tokens = recv_token_offset_.back();
  token_first_pair_.assign(received_tokens + 1, 0);
  std::vector<int32_t> pair_token_row(received);  // q → its token's row in its source's block
  for (int s = 0; s < ep; ++s) {
    for (int64_t q = recv_pair_offset_[s]; q < recv_pair_offset_[s + 1]; ++q) {
      const int32_t row = recv_metadata_[2 * q + 1];
      AOETRON_CHECK(row >= 0 && row < recv_tokens_[s])
          << "ExpertDispatcher: token row " << row << " from rank " << s << " outside [0, "
          << recv_tokens_[s] << ")";
      pair_token_row[q] = row;
      ++token_first_pair_[recv_token_offset_[s] + row + 1];
    }
  }
  for (int64_t i = 0; i < received_tokens; ++i) token_first_pair_[i + 1] += token_first_pair_[i];
  for (int s = 0; s < ep; ++s) {
    for (int64_t q = recv_pair_offset_[s]; q < recv_pair_offset_[s + 1]; ++q) {
      const int64_t token = recv_token_offset_[s] + recv_metadata_[2 * q + 1];
      AOETRON_CHECK(token_first_pair_[token] <= q && q < token_first_pair_[token + 1])
          << "ExpertDispatcher: rank " << s << " sent a token's pairs out of order";
    }
  }
  grouped_row_device_ = CopyIntoArena(HostView(grouped_row_), arena);
  const Tensor pair_token_row_device = CopyIntoArena(HostView(pair_token_row), arena);
  token_first_pair_device_ = CopyIntoArena(HostView(token_first_pair_), arena);
  batch_.x = arena.Allocate({received, d}, x.dtype());
  batch_.gate = batch_.x;
  if (g > 0) batch_.gate = arena.Allocate({received, g}, x.dtype());
  batch_.out = arena.Allocate({received, d}, x.dtype());
  for (int s = 0; s < ep; ++s) {
    const int64_t first = recv_pair_offset_[s], last = recv_pair_offset_[s + 1];
    const int64_t x_unit = recv_forward_offset[s] + MetadataUnits(recv_pairs_[s], element_bytes);
    const Tensor grouped = grouped_row_device_.Rows(first, last);
    ops::CopyRows(PeerBlock(recv_payload, x_unit, recv_tokens_[s], d),
                  pair_token_row_device.Rows(first, last), batch_.x, grouped);
    if (g == 0) continue;
    ops::CopyRows(PeerBlock(recv_payload, x_unit + recv_tokens_[s] * d / unit_, recv_pairs_[s], g),
                  Tensor(), batch_.gate, grouped);
  }

  stats_.kept_pairs = kept;
  stats_.dropped_pairs = layout_.dropped_pairs();
  stats_.received_pairs = received;
  stats_.peer_pairs = PeerSum(layout_.send_pairs, self, 1);
  stats_.peer_token_rows = PeerSum(layout_.send_tokens, self, 1);
  stats_.forward_payload_bytes = PeerSum(send_units_, self, unit_ * element_bytes);
  // Counts, then the metadata rows at the head of each peer's payload (padding included).
  stats_.forward_metadata_bytes = PeerSum(std::vector<int64_t>(ep, 1), self, 2 * sizeof(int64_t)) +
                                  PeerSum(send_forward_units, self, unit_ * element_bytes) -
                                  PeerSum(send_units_, self, unit_ * element_bytes);
  stats_.forward_return_bytes = PeerSum(recv_pairs_, self, d * element_bytes);
  stats_.backward_bytes = PeerSum(layout_.send_pairs, self, d * element_bytes) +
                          PeerSum(recv_units_, self, unit_ * element_bytes);
}

void ExpertDispatcher::Combine(const Tensor& gate_weights, Tensor& y, ActivationArena& arena) {
  if (local_) {
    // D7. (D6 is nothing: the outputs are already here.)
    ops::CombineRows(out_grouped_full_, local_layout_.position, gate_weights, y);
    return;
  }
  const int64_t d = d_model_, pairs = expert_index_.numel(), kept = layout_.kept_pairs();
  const int64_t received = recv_pair_offset_.back();
  // D6. return: outputs in received order, back to their sources.
  Tensor send_back = arena.Allocate({received, d}, x_.dtype());
  ops::CopyRows(batch_.out, grouped_row_device_, send_back, Tensor());
  returned_ = arena.Allocate({pairs, d}, x_.dtype());
  {
    ScopedSeconds timer(&stats_.forward_exchange_seconds);
    ep_->AllToAllV(send_back, recv_pairs_, returned_.Rows(0, kept), layout_.send_pairs);
  }
  if (kept < pairs) {
    Tensor dropped = returned_.Rows(kept, pairs);
    ops::Fill(dropped, 0.0);
  }
  // D7. weighted combine on the source rank.
  ops::CombineRows(returned_, pair_slot_, gate_weights, y);
}

ExpertBatchGradients ExpertDispatcher::CombineBackward(const Tensor& dy, const Tensor& gate_weights,
                                                       Tensor& d_gate_weights,
                                                       ActivationArena& arena) {
  const int64_t d = d_model_, g = gate_width_, pairs = expert_index_.numel();
  const DType dtype = x_.dtype();
  ExpertBatchGradients grads;
  if (local_) {
    const int64_t kept = local_layout_.offsets.back();
    // D7'. dY per pair (dropped pairs' rows are computed and ignored) and dw.
    Tensor d_out_full = arena.Allocate({pairs, d}, dtype);
    ops::Fill(d_out_full, 0.0);
    ops::CombineRowsBackward(dy, out_grouped_full_, local_layout_.position, gate_weights,
                             d_out_full, d_gate_weights);
    grads.d_out = d_out_full.Rows(0, kept);
    // Full-height gradient buffers, so DispatchBackward's ops see every pair (dropped: zero).
    Tensor dx_full = arena.Allocate({pairs, d}, dtype);
    ops::Fill(dx_full, 0.0);
    dx_grouped_full_ = dx_full;
    grads.dx = dx_full.Rows(0, kept);
    grads.dgate = grads.dx;
    if (g > 0) {
      dgate_grouped_full_ = arena.Allocate({pairs, g}, dtype);
      ops::Fill(dgate_grouped_full_, 0.0);
      grads.dgate = dgate_grouped_full_.Rows(0, kept);
    }
    return grads;
  }
  const int64_t kept = layout_.kept_pairs(), received = recv_pair_offset_.back();
  // D7'. combine backward on the source rank.
  Tensor d_returned = arena.Allocate({pairs, d}, dtype);
  ops::Fill(d_returned, 0.0);
  ops::CombineRowsBackward(dy, returned_, pair_slot_, gate_weights, d_returned, d_gate_weights);
  // D6'. dY of every kept pair to its expert rank, then into the expert blocks.
  Tensor recv_dy = arena.Allocate({received, d}, dtype);
  {
    ScopedSeconds timer(&stats_.backward_exchange_seconds);
    ep_->AllToAllV(d_returned.Rows(0, kept), layout_.send_pairs, recv_dy, recv_pairs_);
  }
  grads.d_out = arena.Allocate({received, d}, dtype);
  ops::CopyRows(recv_dy, Tensor(), grads.d_out, grouped_row_device_);
  grads.dx = arena.Allocate({received, d}, dtype);
  ops::Fill(grads.dx, 0.0);
  grads.dgate = grads.dx;
  if (g > 0) {
    grads.dgate = arena.Allocate({received, g}, dtype);
    ops::Fill(grads.dgate, 0.0);
  }
  return grads;
}

void ExpertDispatcher::DispatchBackward(const ExpertBatchGradients& grads, Tensor& dx,
                                        Tensor& d_gate_cache, ActivationArena& arena) {
  const int64_t d = d_model_, g = gate_width_;
  const DType dtype = x_.dtype();
  if (local_) {
    // D5'. the full-height buffers behind grads (dropped pairs' rows are zero).
    ops::PermuteRowsBackward(dx_grouped_full_, local_layout_.position, dx);
    if (g > 0) {
      ops::GatherExpertSlicesBackward(dgate_grouped_full_, expert_index_, local_layout_.position,
                                      d_gate_cache);
    }
    return;
  }
  const int ep = ep_->size();
  const int64_t n = x_.dim(0);
  // D5'. per source: each distinct token's dX (its pairs here, summed in j order), then each
  //      pair's dC — the forward payload's layout, travelling the other way.
  Tensor back_payload = arena.Allocate({recv_unit_offset_.back(), unit_}, dtype);
  Tensor sent_payload = arena.Allocate({send_unit_offset_.back(), unit_}, dtype);
  for (int s = 0; s < ep; ++s) {
    const int64_t tokens = recv_tokens_[s], token_base = recv_token_offset_[s];
    Tensor dx_rows = PeerBlock(back_payload, recv_unit_offset_[s], tokens, d);
    ops::SegmentSumRows(grads.dx, grouped_row_device_,
                        token_first_pair_device_.Rows(token_base, token_base + tokens + 1),
                        dx_rows);
    if (g == 0) continue;
    Tensor gate_rows =
        PeerBlock(back_payload, recv_unit_offset_[s] + tokens * d / unit_, recv_pairs_[s], g);
    ops::CopyRows(grads.dgate,
                  grouped_row_device_.Rows(recv_pair_offset_[s], recv_pair_offset_[s + 1]),
                  gate_rows, Tensor());
  }
  // D4'. back to the sources.
  {
    ScopedSeconds timer(&stats_.backward_exchange_seconds);
    ep_->AllToAllV(back_payload, recv_units_, sent_payload, send_units_);
  }
  // D3'. source rank: dx_t += Σ_p dX_p(t) in rank order (each peer's tokens are distinct); each
  //      kept pair's dC into its (t, e) row of the gate cache's gradient (one pair per row).
  for (int p = 0; p < ep; ++p) {
    const int64_t tokens = layout_.send_tokens[p], pairs = layout_.send_pairs[p];
    ops::AddRows(PeerBlock(sent_payload, send_unit_offset_[p], tokens, d), Tensor(), dx,
                 sent_token_.Rows(layout_.send_token_offset[p], layout_.send_token_offset[p + 1]));
    if (g == 0) continue;
    Tensor d_cache_rows = d_gate_cache.Reshape({n * num_experts_, g});
    ops::AddRows(
        PeerBlock(sent_payload, send_unit_offset_[p] + tokens * d / unit_, pairs, g), Tensor(),
        d_cache_rows,
        gate_cache_row_.Rows(layout_.send_pair_offset[p], layout_.send_pair_offset[p + 1]));
  }
}

}  // namespace aoetron::parallel
