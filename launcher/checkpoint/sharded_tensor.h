// Boxes of global tensors: the unit of checkpoint storage, and the index arithmetic on them.
//
// A sharded tensor is a global (unsharded) tensor of which each rank holds one or more boxes: a
// Region is {offset, shape} in global coordinates, meaning the elements
//     global[offset[0] + i0, offset[1] + i1, ...]   for 0 ≤ i_d < shape[d],
// stored contiguously in row-major order. A tensor-parallel shard of a [V, d] embedding split
// over 2 ranks by rows is the Region {offset {V/2, 0}, shape {V/2, d}} on tp rank 1; an expert's
// weight is its own global tensor (one per expert, named by expert), held whole by the owner.
// A rank-0 tensor (a scalar) has the Region {{}, {}} of one element.
//
// Pure functions and plain structs; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/dtype.h"
#include "core/tensor.h"

namespace aoetron::checkpoint {

struct Region {
  Shape offset;
  Shape shape;
  bool operator==(const Region&) const = default;
};

// A named box: which tensor (name, dtype, global shape) and which part of it (region).
struct TensorBox {
  std::string name;
  DType dtype = DType::kF32;
  Shape global_shape;
  Region region;
};

// The whole of a tensor of `global_shape`: offset 0, shape global_shape.
Region WholeRegion(const Shape& global_shape);
int64_t RegionElements(const Region& region);  // Π shape (1 for rank 0)

// "[0:4, 2:6]" (half-open ranges per dimension; "[]" for a scalar).
std::string RegionToString(const Region& region);

// InvalidArgument naming `what` unless offset and shape have global_shape's rank, every
// shape[d] ≥ 0 and offset[d] ≥ 0, and offset[d] + shape[d] ≤ global_shape[d].
absl::Status ValidateRegion(const Region& region, const Shape& global_shape,
                            const std::string& what);

// The common part of two regions of the same rank; nullopt if they share no element.
std::optional<Region> Intersect(const Region& a, const Region& b);

// Copies the elements of `region` (global coordinates, inside both `source_region` and
// `destination_region`) from `source`, a row-major buffer holding source_region, into
// `destination`, a row-major buffer holding destination_region. Contiguous runs are copied with
// one memcpy each (trailing dimensions that all three regions span fully are merged).
void CopyRegion(const void* source, const Region& source_region, void* destination,
                const Region& destination_region, const Region& region, size_t element_bytes);

// The flat row-major element range [begin, end) of `box` (0 ≤ begin ≤ end ≤ elements) as a list
// of regions in global coordinates, in order: a partial leading row, whole rows, a partial
// trailing row, recursively (at most 2·rank − 1 regions). This is how a ZeRO-1 rank, which owns a
// flat range of a parameter's optimizer state, describes what it holds.
std::vector<Region> FlatRangeToRegions(const Region& box, int64_t begin, int64_t end);

// Fully parallel save: a box that `num_replicas` ranks hold identically is written by one of
// them. Given the byte sizes of the boxes that a replica group holds (the same list, in the same
// order, on every replica), returns for each box the replica index (0 ≤ i < num_replicas) that
// writes it, balancing bytes: largest box first to the least-loaded replica (ties: lower box
// index first, lower replica index first). Deterministic, so every replica computes the same
// answer without talking to the others.
std::vector<int> AssignReplicaWriters(std::span<const int64_t> box_bytes, int num_replicas);

}  // namespace aoetron::checkpoint
