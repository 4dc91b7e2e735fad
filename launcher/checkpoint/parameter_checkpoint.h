// From a model's ParameterSet (and state laid out like it, e.g. AdamW's m and v) to the boxes a
// checkpoint saves and loads. Driven by Parameter metadata alone: name, global_shape,
// local_offset/local_shape, sharding (models/parameter.h).
//
// Tensor names: a parameter is saved under its own name ("layers.3.ffn.experts.5.w_up", see
// models/gpt_model.h); state that shadows the parameters under "<name><suffix>", by convention
// ".adam_m", ".adam_v" (kind KIND_OPTIMIZER_STATE), e.g. "layers.3.attn.w_o.adam_m".
//
// Who writes a replicated box (fully parallel save): the ranks holding an identical box form a
// replica group, and AssignReplicaWriters spreads the group's boxes over its members by bytes.
// With the process grid of parallel/process_grid.h (rank = tp_rank + tp·dp_rank):
//   tensor-split, not expert:   replicas = the dp group           (dp ranks, index dp_rank)
//   not split, not expert:      replicas = tp × dp = every rank   (index = world rank)
//   tensor-split expert:        replicas = the edp group          (index expert_dp_rank)
//   not split, expert:          replicas = tp × edp               (index tp_rank + tp·edp_rank)
// Each class is balanced separately (the same list on every member of a group), so every rank
// writes about 1/world of the replicated bytes plus its share of what it alone holds.
//
// Functions are pure (they build lists of views); the tensors viewed must outlive the lists.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "launcher/checkpoint/checkpoint_reader.h"
#include "launcher/checkpoint/checkpoint_writer.h"
#include "models/parameter.h"
#include "parallel/process_grid.h"

namespace aoetron::checkpoint {

// State laid out like the parameter set's flat value buffer (same element offsets), saved as
// "<parameter name><suffix>".
struct ShadowState {
  std::string suffix;  // ".adam_m"
  Tensor flat;         // [params.num_elements()] of any dtype
  pb::TensorKind kind = pb::KIND_OPTIMIZER_STATE;
};

// The view of parameter `p`'s box inside `flat`, a buffer laid out like params' value buffer.
Tensor ShadowView(const ParameterSet& params, const Parameter& p, const Tensor& flat);

// The box of parameter `p` in global coordinates, named `p.name + suffix`, dtype of `dtype`.
TensorBox ParameterBox(const Parameter& p, DType dtype, const std::string& suffix = "");

// Every parameter's master value (kind PARAMETER: f32 in mixed precision, never the bf16
// compute copy) and every shadow's box, with write flags set for a
// fully parallel save over `grid` (see the file comment). `grid` is this rank's place in the
// layout the parameter set was built for (a 1-rank grid writes everything).
// `host_values`, when defined, is a host buffer laid out like params' master buffer that is saved
// in place of the masters themselves (the parameters live on a device: copy them over first).
std::vector<SaveItem> ParameterSaveItems(const ParameterSet& params,
                                         const parallel::ProcessGrid& grid,
                                         const std::vector<ShadowState>& shadows = {},
                                         const Tensor& host_values = Tensor());

// Read requests filling every parameter's master value and every shadow from a checkpoint, whatever
// layout saved it (each request is this rank's box).
// `host_values`, when defined, receives the values in place of the parameters (laid out like
// their master buffer; the caller copies it to the device). The caller then refreshes the compute
// copy (ParameterSet::RefreshComputeCopy).
std::vector<ReadRequest> ParameterReadRequests(ParameterSet& params,
                                               const std::vector<ShadowState>& shadows = {},
                                               const Tensor& host_values = Tensor());

// ZeRO-1: a rank holding only the flat elements [flat_begin, flat_begin + shard.numel()) of a
// shadow buffer (its optimizer-state shard). Returns one item (or request) per piece of a
// parameter box inside that range (FlatRangeToRegions), viewing `shard`. Save items have
// write = true; where tp ranks hold identical shards (parameters not split over tp) the caller
// clears write on all but one of them.
std::vector<SaveItem> FlatShardSaveItems(const ParameterSet& params, const ShadowState& shard,
                                         int64_t flat_begin);
std::vector<ReadRequest> FlatShardReadRequests(const ParameterSet& params, const ShadowState& shard,
                                               int64_t flat_begin);

}  // namespace aoetron::checkpoint
