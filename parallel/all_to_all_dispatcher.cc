#include "parallel/all_to_all_dispatcher.h"

#include <algorithm>
#include <numeric>

#include "core/check.h"
#include "core/device_transfer.h"
#include "core/ops/elementwise.h"
#include "core/ops/expert_permute.h"
#include "core/ops/row_movement.h"
#include "core/prefix_sum.h"
#include "core/timing.h"

namespace aoetron::parallel {
namespace {

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

}  // namespace

AllToAllExpertDispatcher::AllToAllExpertDispatcher(Communicator& ep, Communicator& ep_host,
                                                   int64_t num_experts, int64_t d_model,
                                                   int64_t gate_width)
    : ExpertDispatcher(ep.rank(), ep.size(), num_experts, d_model, gate_width),
      ep_(&ep),
      ep_host_(&ep_host),
      unit_(std::gcd(d_model, gate_width)),
      element_bytes_(0) {
  AOETRON_CHECK(ep_host.size() == ep.size() && ep_host.rank() == ep.rank())
      << "AllToAllExpertDispatcher: the host communicator (rank " << ep_host.rank() << " of "
      << ep_host.size() << ") is not the expert-parallel group (rank " << ep.rank() << " of "
      << ep.size() << ")";
}

void AllToAllExpertDispatcher::DispatchStages(std::span<const int64_t> keep_limit,
                                              ActivationArena& arena) {
  element_bytes_ = static_cast<int64_t>(SizeOf(x_.dtype()));
  BuildLayout(keep_limit, arena);
  ExchangeCounts();
  Pack(arena);
  Exchange();
  Regroup(arena);
  RecordForwardStats();
}

// D1. layout, on the host from the N·K expert indices (copied over unless they are cpu tensors
//     already, as ops::BuildExpertLayout does), and its index vectors uploaded into the arena.
void AllToAllExpertDispatcher::BuildLayout(std::span<const int64_t> keep_limit,
                                           ActivationArena& arena) {
  const Tensor host_index =
      expert_index_.device().is_cpu() ? expert_index_ : CopyToDevice(expert_index_, Device::Cpu());
  BuildDispatchLayout(host_index, num_experts_, ep_size_, keep_limit, layout_);
  CountMinimumPayload(host_index);
  const int64_t kept = layout_.kept_pairs();
  sent_token_ = CopyIntoArena(HostView(layout_.sent_token), arena);
  pair_slot_ = CopyIntoArena(layout_.pair_slot, arena);
  if (gate_width_ > 0) {
    // Row of each kept pair's C_i in the gate cache seen as [N·K, g]: its slot t·K + j, the
    // inverse of pair_slot on the kept pairs.
    std::vector<int32_t> gate_row(kept);
    const int32_t* pair_slot = layout_.pair_slot.data<int32_t>();
    for (int64_t q = 0; q < layout_.pair_slot.numel(); ++q) {
      if (pair_slot[q] < kept) gate_row[pair_slot[q]] = static_cast<int32_t>(q);
    }
    gate_cache_row_ = CopyIntoArena(HostView(gate_row), arena);
  }
}

// D2. counts: (distinct tokens, pairs) for every peer, both ways, on the host communicator. (The
//     only exchange before the payload: everything else a receiver needs travels inside it.)
void AllToAllExpertDispatcher::ExchangeCounts() {
  const int ep = ep_size_;
  std::vector<int64_t> send_counts(2 * ep), recv_counts(2 * ep);
  for (int p = 0; p < ep; ++p) {
    send_counts[2 * p] = layout_.send_tokens[p];
    send_counts[2 * p + 1] = layout_.send_pairs[p];
  }
  const std::vector<int64_t> one_row_each(ep, 1);
  {
    ScopedSeconds timer(&stats_.forward_exchange_seconds);
    ep_host_->AllToAllV(Tensor::Wrap(send_counts.data(), {ep, 2}, DType::kI64), one_row_each,
                        Tensor::Wrap(recv_counts.data(), {ep, 2}, DType::kI64), one_row_each);
  }
  recv_tokens_.resize(ep);
  recv_pairs_.resize(ep);
  send_units_.resize(ep);
  recv_units_.resize(ep);
  send_forward_units_.resize(ep);
  recv_forward_units_.resize(ep);
  for (int p = 0; p < ep; ++p) {
    recv_tokens_[p] = recv_counts[2 * p];
    recv_pairs_[p] = recv_counts[2 * p + 1];
    send_units_[p] = PayloadElements(layout_.send_tokens[p], layout_.send_pairs[p]) / unit_;
    recv_units_[p] = PayloadElements(recv_tokens_[p], recv_pairs_[p]) / unit_;
    send_forward_units_[p] = MetadataUnits(layout_.send_pairs[p]) + send_units_[p];
    recv_forward_units_[p] = MetadataUnits(recv_pairs_[p]) + recv_units_[p];
  }
  recv_token_offset_ = BlockOffsets(recv_tokens_);
  recv_pair_offset_ = BlockOffsets(recv_pairs_);
  send_unit_offset_ = BlockOffsets(send_units_);
  recv_unit_offset_ = BlockOffsets(recv_units_);
  send_forward_offset_ = BlockOffsets(send_forward_units_);
  recv_forward_offset_ = BlockOffsets(recv_forward_units_);
}

// D3. permute into the send payload: per peer p, the pair metadata (i32 pairs, their bytes
//     padded to whole payload rows), its distinct tokens' x rows, then its pairs' gate rows:
//       [metadata: ceil(8·pairs_p / (unit·b)) rows][x: tokens_p · d][gate: pairs_p · g]
//     One exchange carries all three; the bytes are moved, never converted, so the i32 values
//     arrive intact.
void AllToAllExpertDispatcher::Pack(ActivationArena& arena) {
  const int64_t d = d_model_, g = gate_width_;
  send_payload_ = arena.Allocate({send_forward_offset_.back(), unit_}, x_.dtype());
  recv_payload_ = arena.Allocate({recv_forward_offset_.back(), unit_}, x_.dtype());
  for (int p = 0; p < ep_size_; ++p) {
    const int64_t tokens = layout_.send_tokens[p], pairs = layout_.send_pairs[p];
    // The padding after the metadata is zeroed, so the bytes sent are defined.
    Tensor words = MetadataWords(send_payload_, send_forward_offset_[p], pairs);
    ops::Fill(words, 0.0);
    Tensor metadata = words.Rows(0, 2 * pairs);
    const int64_t first_word = 2 * layout_.send_pair_offset[p];
    CopyAcrossDevices(HostView(layout_.slot_metadata).Rows(first_word, first_word + 2 * pairs),
                      metadata);
    const int64_t x_unit = send_forward_offset_[p] + MetadataUnits(pairs);
    Tensor x_rows = PeerBlock(send_payload_, x_unit, tokens, d);
    ops::CopyRows(x_,
                  sent_token_.Rows(layout_.send_token_offset[p], layout_.send_token_offset[p + 1]),
                  x_rows, Tensor());
    if (g == 0) continue;
    Tensor gate_rows = PeerBlock(send_payload_, x_unit + tokens * d / unit_, pairs, g);
    ops::CopyRows(
        gate_cache_.Reshape({expert_index_.numel(), g}),
        gate_cache_row_.Rows(layout_.send_pair_offset[p], layout_.send_pair_offset[p + 1]),
        gate_rows, Tensor());
  }
}

// D4. exchange: metadata and payload in one AllToAllV; the received pair metadata then comes to
//     the host (8 bytes per pair): it sizes the expert blocks.
void AllToAllExpertDispatcher::Exchange() {
  {
    ScopedSeconds timer(&stats_.forward_exchange_seconds);
    ep_->AllToAllV(send_payload_, send_forward_units_, recv_payload_, recv_forward_units_);
  }
  recv_metadata_.resize(2 * recv_pair_offset_.back());
  for (int s = 0; s < ep_size_; ++s) {
    const Tensor words = MetadataWords(recv_payload_, recv_forward_offset_[s], recv_pairs_[s]);
    Tensor host =
        HostView(recv_metadata_).Rows(2 * recv_pair_offset_[s], 2 * recv_pair_offset_[s + 1]);
    CopyAcrossDevices(words.Rows(0, 2 * recv_pairs_[s]), host);
  }
}

// D5. regroup by local expert: a stable counting sort of the received pairs (source rank, then
//     token, then j: global token order inside each expert block), then the x and gate rows
//     copied into the expert blocks.
void AllToAllExpertDispatcher::Regroup(ActivationArena& arena) {
  const int ep = ep_size_;
  const int64_t d = d_model_, g = gate_width_;
  const int64_t received = recv_pair_offset_.back();
  const int64_t experts_here = local_experts();
  std::vector<int64_t> counts(experts_here, 0);
  for (int64_t q = 0; q < received; ++q) {
    const int32_t e = recv_metadata_[2 * q];
    AOETRON_CHECK(e >= 0 && e < experts_here) << "ExpertDispatcher: received local expert " << e
                                              << " outside [0, " << experts_here << ")";
    ++counts[e];
  }
  batch_.offsets = BlockOffsets(counts);
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
  std::vector<int64_t> pairs_of_token(received_tokens, 0);
  std::vector<int32_t> pair_token_row(received);  // q → its token's row in its source's block
  for (int s = 0; s < ep; ++s) {
    for (int64_t q = recv_pair_offset_[s]; q < recv_pair_offset_[s + 1]; ++q) {
      const int32_t row = recv_metadata_[2 * q + 1];
      AOETRON_CHECK(row >= 0 && row < recv_tokens_[s])
          << "ExpertDispatcher: token row " << row << " from rank " << s << " outside [0, "
          << recv_tokens_[s] << ")";
      pair_token_row[q] = row;
      ++pairs_of_token[recv_token_offset_[s] + row];
    }
  }
  token_first_pair_ = BlockOffsets(pairs_of_token);
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
  batch_.x = arena.Allocate({received, d}, x_.dtype());
  batch_.gate = batch_.x;
  if (g > 0) batch_.gate = arena.Allocate({received, g}, x_.dtype());
  batch_.out = arena.Allocate({received, d}, x_.dtype());
  for (int s = 0; s < ep; ++s) {
    const int64_t first = recv_pair_offset_[s], last = recv_pair_offset_[s + 1];
    const int64_t x_unit = recv_forward_offset_[s] + MetadataUnits(recv_pairs_[s]);
    const Tensor grouped = grouped_row_device_.Rows(first, last);
    ops::CopyRows(PeerBlock(recv_payload_, x_unit, recv_tokens_[s], d),
                  pair_token_row_device.Rows(first, last), batch_.x, grouped);
    if (g == 0) continue;
    ops::CopyRows(PeerBlock(recv_payload_, x_unit + recv_tokens_[s] * d / unit_, recv_pairs_[s], g),
                  Tensor(), batch_.gate, grouped);
  }
}

void AllToAllExpertDispatcher::RecordForwardStats() {
  const int ep = ep_size_, self = ep_rank_;
  const int64_t d = d_model_, b = element_bytes_;
  stats_.kept_pairs = layout_.kept_pairs();
  stats_.dropped_pairs = layout_.dropped_pairs();
  stats_.received_pairs = recv_pair_offset_.back();
  stats_.peer_pairs = PeerSum(layout_.send_pairs, self, 1);
  stats_.peer_token_rows = PeerSum(layout_.send_tokens, self, 1);
  stats_.forward_payload_bytes = PeerSum(send_units_, self, unit_ * b);
  // Counts, then the metadata rows at the head of each peer's payload (padding included).
  stats_.forward_metadata_bytes = PeerSum(std::vector<int64_t>(ep, 1), self, 2 * sizeof(int64_t)) +
                                  PeerSum(send_forward_units_, self, unit_ * b) -
                                  PeerSum(send_units_, self, unit_ * b);
  stats_.forward_return_bytes = PeerSum(recv_pairs_, self, d * b);
  stats_.backward_bytes =
      PeerSum(layout_.send_pairs, self, d * b) + PeerSum(recv_units_, self, unit_ * b);
}

void AllToAllExpertDispatcher::CountMinimumPayload(const Tensor& host_index) {
  // Straight from the routing (not from the layout): a kept pair of token t for a peer p costs
  // its g gate values; t's x row costs d once per peer it has a kept pair on. host_index is the
  // host copy of the expert indices that the layout was built from.
  const int64_t n = host_index.dim(0), k = host_index.dim(1);
  const int32_t* index = host_index.data<int32_t>();
  const int ep = ep_size_, self = ep_rank_;
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
  stats_.minimum_payload_bytes = (token_rows * d_model_ + gate_rows * gate_width_) * element_bytes_;
}

Tensor AllToAllExpertDispatcher::PeerBlock(const Tensor& payload, int64_t first_unit, int64_t rows,
                                           int64_t width) const {
  const int64_t units = rows * width / unit_;
  return payload.Rows(first_unit, first_unit + units).Reshape({rows, width});
}

Tensor AllToAllExpertDispatcher::MetadataWords(const Tensor& payload, int64_t first_unit,
                                               int64_t pairs) const {
  const int64_t units = MetadataUnits(pairs);
  const int64_t words = units * unit_ * element_bytes_ / static_cast<int64_t>(sizeof(int32_t));
  return payload.Rows(first_unit, first_unit + units).ViewAs(DType::kI32, {words});
}

// D6. return: outputs in received order, back to their sources.
void AllToAllExpertDispatcher::ReturnOutputs(ActivationArena& arena) {
  const int64_t d = d_model_, pairs = expert_index_.numel(), kept = layout_.kept_pairs();
  const int64_t received = recv_pair_offset_.back();
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
}

void AllToAllExpertDispatcher::Combine(const Tensor& gate_weights, Tensor& y,
                                       ActivationArena& arena) {
  ReturnOutputs(arena);                                      // D6
  ops::CombineRows(returned_, pair_slot_, gate_weights, y);  // D7. weighted, on the source rank
}

// D6'. dY of every kept pair to its expert rank, then into the expert blocks.
Tensor AllToAllExpertDispatcher::SendOutputGradients(const Tensor& d_returned,
                                                     ActivationArena& arena) {
  const int64_t d = d_model_, kept = layout_.kept_pairs(), received = recv_pair_offset_.back();
  Tensor recv_dy = arena.Allocate({received, d}, x_.dtype());
  {
    ScopedSeconds timer(&stats_.backward_exchange_seconds);
    ep_->AllToAllV(d_returned.Rows(0, kept), layout_.send_pairs, recv_dy, recv_pairs_);
  }
  Tensor d_out = arena.Allocate({received, d}, x_.dtype());
  ops::CopyRows(recv_dy, Tensor(), d_out, grouped_row_device_);
  return d_out;
}

ExpertBatchGradients AllToAllExpertDispatcher::CombineBackward(const Tensor& dy,
                                                               const Tensor& gate_weights,
                                                               Tensor& d_gate_weights,
                                                               ActivationArena& arena) {
  const int64_t d = d_model_, g = gate_width_, pairs = expert_index_.numel();
  const int64_t received = recv_pair_offset_.back();
  const DType dtype = x_.dtype();
  // D7'. combine backward on the source rank.
  Tensor d_returned = arena.Allocate({pairs, d}, dtype);
  ops::Fill(d_returned, 0.0);
  ops::CombineRowsBackward(dy, returned_, pair_slot_, gate_weights, d_returned, d_gate_weights);
  ExpertBatchGradients grads;
  grads.d_out = SendOutputGradients(d_returned, arena);  // D6'
  grads.dx = arena.Allocate({received, d}, dtype);
  ops::Fill(grads.dx, 0.0);
  grads.dgate = grads.dx;
  if (g > 0) {
    grads.dgate = arena.Allocate({received, g}, dtype);
    ops::Fill(grads.dgate, 0.0);
  }
  return grads;
}

// D5'. per source: each distinct token's dX (its pairs here, summed in j order), then each pair's
//      dC — the forward payload's layout, travelling the other way.
Tensor AllToAllExpertDispatcher::PackInputGradients(const ExpertBatchGradients& grads,
                                                    ActivationArena& arena) {
  const int64_t d = d_model_, g = gate_width_;
  Tensor back_payload = arena.Allocate({recv_unit_offset_.back(), unit_}, x_.dtype());
  for (int s = 0; s < ep_size_; ++s) {
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
  return back_payload;
}

// D4'. back to the sources.
Tensor AllToAllExpertDispatcher::ExchangeInputGradients(const Tensor& back_payload,
                                                        ActivationArena& arena) {
  Tensor sent_payload = arena.Allocate({send_unit_offset_.back(), unit_}, x_.dtype());
  ScopedSeconds timer(&stats_.backward_exchange_seconds);
  ep_->AllToAllV(back_payload, recv_units_, sent_payload, send_units_);
  return sent_payload;
}

// D3'. source rank: dx_t += Σ_p dX_p(t) in rank order (each peer's tokens are distinct); each
//      kept pair's dC into its slot row t·K + j of the gate cache's gradient (one pair per row).
void AllToAllExpertDispatcher::AddInputGradients(const Tensor& sent_payload, Tensor& dx,
                                                 Tensor& d_gate_cache) {
  const int64_t d = d_model_, g = gate_width_;
  for (int p = 0; p < ep_size_; ++p) {
    const int64_t tokens = layout_.send_tokens[p], pairs = layout_.send_pairs[p];
    ops::AddRows(PeerBlock(sent_payload, send_unit_offset_[p], tokens, d), Tensor(), dx,
                 sent_token_.Rows(layout_.send_token_offset[p], layout_.send_token_offset[p + 1]));
    if (g == 0) continue;
    Tensor d_cache_rows = d_gate_cache.Reshape({expert_index_.numel(), g});
    ops::AddRows(
        PeerBlock(sent_payload, send_unit_offset_[p] + tokens * d / unit_, pairs, g), Tensor(),
        d_cache_rows,
        gate_cache_row_.Rows(layout_.send_pair_offset[p], layout_.send_pair_offset[p + 1]));
  }
}

void AllToAllExpertDispatcher::DispatchBackward(const ExpertBatchGradients& grads, Tensor& dx,
                                                Tensor& d_gate_cache, ActivationArena& arena) {
  const Tensor back_payload = PackInputGradients(grads, arena);             // D5'
  const Tensor sent_payload = ExchangeInputGradients(back_payload, arena);  // D4'
  AddInputGradients(sent_payload, dx, d_gate_cache);                        // D3'
}

}  // namespace aoetron::parallel
