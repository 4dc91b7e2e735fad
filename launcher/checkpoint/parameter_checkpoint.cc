#include "launcher/checkpoint/parameter_checkpoint.h"

#include <array>

#include "core/check.h"

namespace aoetron::checkpoint {
namespace {

// Which replica class a parameter is in, its replica count and this rank's index in it.
struct Replicas {
  int cls;
  int count;
  int index;
};
Replicas ReplicasOf(const Parameter& p, const parallel::ProcessGrid& grid) {
  const int tp = grid.tp_size();
  if (!p.sharding.is_expert()) {
    if (p.sharding.is_tensor_split()) return {0, grid.dp_size(), grid.dp_rank()};
    return {1, tp * grid.dp_size(), grid.tp_rank() + tp * grid.dp_rank()};
  }
  if (p.sharding.is_tensor_split()) return {2, grid.expert_dp_size(), grid.expert_dp_rank()};
  return {3, tp * grid.expert_dp_size(), grid.tp_rank() + tp * grid.expert_dp_rank()};
}

}  // namespace

Tensor ShadowView(const ParameterSet& params, const Parameter& p, const Tensor& flat) {
  AOETRON_CHECK(flat.numel() == params.num_elements())
      << "shadow state of " << flat.numel() << " elements for a parameter set of "
      << params.num_elements();
  const int64_t begin = p.flat_offset;
  return flat.Reshape({flat.numel()})
      .Rows(begin, begin + NumElements(p.local_shape))
      .Reshape(p.local_shape);
}

TensorBox ParameterBox(const Parameter& p, DType dtype, const std::string& suffix) {
  TensorBox box;
  box.name = p.name + suffix;
  box.dtype = dtype;
  box.global_shape = p.global_shape;
  box.region = Region{p.local_offset, p.local_shape};
  if (box.region.offset.empty()) box.region.offset.assign(p.global_shape.size(), 0);
  return box;
}

std::vector<SaveItem> ParameterSaveItems(const ParameterSet& params,
                                         const parallel::ProcessGrid& grid,
                                         const std::vector<ShadowState>& shadows,
                                         const Tensor& host_values) {
  std::vector<SaveItem> items;
  std::array<std::vector<size_t>, 4> class_items;  // item indices per replica class
  std::vector<Replicas> replicas;
  for (const Parameter& p : params.all()) {
    const Replicas r = ReplicasOf(p, grid);
    class_items[r.cls].push_back(items.size());
    replicas.push_back(r);
    const Tensor values = host_values.defined() ? ShadowView(params, p, host_values) : p.master;
    items.push_back(SaveItem{ParameterBox(p, p.master.dtype()), pb::KIND_PARAMETER, values, true});
    for (const ShadowState& shadow : shadows) {
      class_items[r.cls].push_back(items.size());
      replicas.push_back(r);
      items.push_back(SaveItem{ParameterBox(p, shadow.flat.dtype(), shadow.suffix), shadow.kind,
                               ShadowView(params, p, shadow.flat), true});
    }
  }
  for (const std::vector<size_t>& members : class_items) {
    if (members.empty()) continue;
    std::vector<int64_t> bytes;
    for (size_t i : members) bytes.push_back(static_cast<int64_t>(items[i].values.nbytes()));
    const std::vector<int> writer = AssignReplicaWriters(bytes, replicas[members[0]].count);
    for (size_t k = 0; k < members.size(); ++k) {
      items[members[k]].write = writer[k] == replicas[members[k]].index;
    }
  }
  return items;
}

std::vector<ReadRequest> ParameterReadRequests(ParameterSet& params,
                                               const std::vector<ShadowState>& shadows,
                                               const Tensor& host_values) {
  std::vector<ReadRequest> requests;
  for (Parameter& p : params.all()) {
    const Tensor values = host_values.defined() ? ShadowView(params, p, host_values) : p.master;
    requests.push_back(ReadRequest{ParameterBox(p, p.master.dtype()), values});
    for (const ShadowState& shadow : shadows) {
      requests.push_back(ReadRequest{ParameterBox(p, shadow.flat.dtype(), shadow.suffix),
                                     ShadowView(params, p, shadow.flat)});
    }
  }
  return requests;
}

namespace {

// Calls visit(box, view) for every piece of a parameter box inside the flat shard.
template <typename Visit>
void ForEachShardPiece(const ParameterSet& params, const ShadowState& shard, int64_t flat_begin,
                       Visit visit) {
  const int64_t flat_end = flat_begin + shard.flat.numel();
  const size_t element = SizeOf(shard.flat.dtype());
  auto* shard_base = static_cast<uint8_t*>(const_cast<Tensor&>(shard.flat).raw_data());
  for (const Parameter& p : params.all()) {
    const int64_t begin = p.flat_offset;
    const int64_t end = begin + NumElements(p.local_shape);
    const int64_t from = std::max(begin, flat_begin), to = std::min(end, flat_end);
    if (from >= to) continue;
    const TensorBox whole = ParameterBox(p, shard.flat.dtype(), shard.suffix);
    int64_t at = from;  // flat position of the next piece
    for (const Region& region : FlatRangeToRegions(whole.region, from - begin, to - begin)) {
      TensorBox box = whole;
      box.region = region;
      const int64_t n = RegionElements(region);
      visit(box, Tensor::Wrap(shard_base + (at - flat_begin) * element, region.shape,
                              shard.flat.dtype(), shard.flat.device()));
      at += n;
    }
  }
}

}  // namespace

std::vector<SaveItem> FlatShardSaveItems(const ParameterSet& params, const ShadowState& shard,
                                         int64_t flat_begin) {
  std::vector<SaveItem> items;
  ForEachShardPiece(params, shard, flat_begin, [&](const TensorBox& box, const Tensor& view) {
    items.push_back(SaveItem{box, shard.kind, view, true});
  });
  return items;
}

std::vector<ReadRequest> FlatShardReadRequests(const ParameterSet& params, const ShadowState& shard,
                                               int64_t flat_begin) {
  std::vector<ReadRequest> requests;
  ForEachShardPiece(params, shard, flat_begin, [&](const TensorBox& box, const Tensor& view) {
    requests.push_back(ReadRequest{box, view});
  });
  return requests;
}

}  // namespace aoetron::checkpoint
