// AllToAllExpertDispatcher: the ExpertDispatcher of an ep group of any size, each stage of
// parallel/expert_dispatcher.h's numbered list a named method (the payload formats are there).
//   forward   D1 BuildLayout → D2 ExchangeCounts → D3 Pack → D4 Exchange → D5 Regroup
//             (experts) D6 ReturnOutputs → D7 combine
//   backward  D7' combine backward → D6' SendOutputGradients (experts backward)
//             → D5' PackInputGradients → D4' ExchangeInputGradients → D3' AddInputGradients
// What reaches the host: the N·K expert indices (D1 builds the layout there), the counts
// exchange (D2, on the host communicator) and the received pair metadata (8 bytes a pair).
#pragma once

#include <vector>

#include "parallel/dispatch_layout.h"
#include "parallel/expert_dispatcher.h"

namespace aoetron::parallel {

class AllToAllExpertDispatcher final : public ExpertDispatcher {
 public:
  // ep: the group's device communicator (payloads); ep_host: its host communicator (counts).
  AllToAllExpertDispatcher(Communicator& ep, Communicator& ep_host, int64_t num_experts,
                           int64_t d_model, int64_t gate_width);

  void Combine(const Tensor& gate_weights, Tensor& y, ActivationArena& arena) override;
  ExpertBatchGradients CombineBackward(const Tensor& dy, const Tensor& gate_weights,
                                       Tensor& d_gate_weights, ActivationArena& arena) override;
  void DispatchBackward(const ExpertBatchGradients& grads, Tensor& dx, Tensor& d_gate_cache,
                        ActivationArena& arena) override;

  // The layout of the last Dispatch (tests, diagnostics).
  const DispatchLayout& layout() const { return layout_; }

 private:
  void DispatchStages(std::span<const int64_t> keep_limit, ActivationArena& arena) override;
  void BuildLayout(std::span<const int64_t> keep_limit, ActivationArena& arena);  // D1
  void ExchangeCounts();                                                          // D2
  void Pack(ActivationArena& arena);                                              // D3
  void Exchange();                                                                // D4
  void Regroup(ActivationArena& arena);                                           // D5
  void RecordForwardStats();
  void ReturnOutputs(ActivationArena& arena);                                            // D6
  Tensor SendOutputGradients(const Tensor& d_returned, ActivationArena& arena);          // D6'
  Tensor PackInputGradients(const ExpertBatchGradients& grads, ActivationArena& arena);  // D5'
  Tensor ExchangeInputGradients(const Tensor& back_payload, ActivationArena& arena);     // D4'
  void AddInputGradients(const Tensor& sent_payload, Tensor& dx, Tensor& d_gate_cache);  // D3'

  void CountMinimumPayload(const Tensor& host_index);
  // The [rows, width] block of a payload ([units, unit_]) that starts at payload row first_unit.
  Tensor PeerBlock(const Tensor& payload, int64_t first_unit, int64_t rows, int64_t width) const;
  // The metadata rows of `pairs` pairs at payload row first_unit, seen as i32 words (padding
  // included: 2·pairs words of metadata, then zeros).
  Tensor MetadataWords(const Tensor& payload, int64_t first_unit, int64_t pairs) const;
  // Payload elements per peer: x rows then gate rows (source view: send; expert view: recv).
  int64_t PayloadElements(int64_t tokens, int64_t pairs) const {
    return tokens * d_model_ + pairs * gate_width_;
  }
  // Payload rows that hold `pairs` metadata entries (2 × i32 each) at the head of a peer's
  // forward payload: ceil(8 · pairs / (unit · element_bytes)).
  int64_t MetadataUnits(int64_t pairs) const {
    const int64_t row_bytes = unit_ * element_bytes_;
    return (pairs * 2 * static_cast<int64_t>(sizeof(int32_t)) + row_bytes - 1) / row_bytes;
  }

  Communicator* ep_;
  Communicator* ep_host_;
  const int64_t unit_;     // payload row width: gcd(d, g), so x rows and gate rows are whole rows
  int64_t element_bytes_;  // of x's dtype, at the last Dispatch

  DispatchLayout layout_;
  std::vector<int64_t> recv_tokens_, recv_pairs_;              // per source rank
  std::vector<int64_t> recv_token_offset_, recv_pair_offset_;  // prefix sums, size ep + 1
  std::vector<int64_t> send_units_, recv_units_;               // payload rows per peer
  std::vector<int64_t> send_unit_offset_, recv_unit_offset_;
  // Forward payload rows per peer (metadata + payload) and their prefix sums.
  std::vector<int64_t> send_forward_units_, recv_forward_units_;
  std::vector<int64_t> send_forward_offset_, recv_forward_offset_;
  Tensor send_payload_, recv_payload_;     // D3 → D4 → D5, arena tensors
  std::vector<int32_t> recv_metadata_;     // [received pairs, 2]
  std::vector<int32_t> grouped_row_;       // received pair q → its row in the expert blocks
  std::vector<int64_t> token_first_pair_;  // received token → its first received pair (CSR)
  Tensor returned_;                        // [N·K, d] outputs in slot order; dropped rows 0
  // The layout's index vectors on the device (arena tensors, valid until the next Dispatch).
  Tensor sent_token_;               // i32 [Σ send_tokens]: layout_.sent_token
  Tensor gate_cache_row_;           // i32 [kept]: slot t·K + j of each kept pair (AoE only)
  Tensor pair_slot_;                // i32 [N, K]: layout_.pair_slot
  Tensor grouped_row_device_;       // i32 [received]: grouped_row_
  Tensor token_first_pair_device_;  // i64 [received tokens + 1]: token_first_pair_
};

}  // namespace aoetron::parallel
