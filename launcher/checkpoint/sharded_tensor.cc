#include "launcher/checkpoint/sharded_tensor.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace aoetron::checkpoint {

Region WholeRegion(const Shape& global_shape) {
  return Region{Shape(global_shape.size(), 0), global_shape};
}

int64_t RegionElements(const Region& region) { return NumElements(region.shape); }

std::string RegionToString(const Region& region) {
  std::string out = "[";
  for (size_t d = 0; d < region.shape.size(); ++d) {
    absl::StrAppend(&out, d ? ", " : "", region.offset[d], ":", region.offset[d] + region.shape[d]);
  }
  return out + "]";
}

absl::Status ValidateRegion(const Region& region, const Shape& global_shape,
                            const std::string& what) {
  if (region.offset.size() != global_shape.size() || region.shape.size() != global_shape.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": region of rank ", region.offset.size(), "/", region.shape.size(),
                     " (offset/shape) for a tensor of shape ", ShapeToString(global_shape)));
  }
  for (size_t d = 0; d < global_shape.size(); ++d) {
    if (region.offset[d] < 0 || region.shape[d] < 0 ||
        region.offset[d] + region.shape[d] > global_shape[d]) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": region ", RegionToString(region),
                                                     " is outside the global shape ",
                                                     ShapeToString(global_shape)));
    }
  }
  return absl::OkStatus();
}

std::optional<Region> Intersect(const Region& a, const Region& b) {
  AOETRON_CHECK(a.shape.size() == b.shape.size() && a.offset.size() == a.shape.size() &&
                b.offset.size() == b.shape.size())
      << "Intersect: regions of different rank " << RegionToString(a) << " and "
      << RegionToString(b);
  Region out;
  out.offset.resize(a.shape.size());
  out.shape.resize(a.shape.size());
  for (size_t d = 0; d < a.shape.size(); ++d) {
    const int64_t begin = std::max(a.offset[d], b.offset[d]);
    const int64_t end = std::min(a.offset[d] + a.shape[d], b.offset[d] + b.shape[d]);
    if (end <= begin) return std::nullopt;
    out.offset[d] = begin;
    out.shape[d] = end - begin;
  }
  if (RegionElements(a) == 0 || RegionElements(b) == 0) return std::nullopt;
  return out;
}

void CopyRegion(const void* source, const Region& source_region, void* destination,
                const Region& destination_region, const Region& region, size_t element_bytes) {
  const int rank = static_cast<int>(region.shape.size());
  AOETRON_CHECK(static_cast<int>(source_region.shape.size()) == rank &&
                static_cast<int>(destination_region.shape.size()) == rank)
      << "CopyRegion: rank mismatch";
  if (RegionElements(region) == 0) return;
  for (int d = 0; d < rank; ++d) {
    AOETRON_CHECK(region.offset[d] >= source_region.offset[d] &&
                  region.offset[d] + region.shape[d] <=
                      source_region.offset[d] + source_region.shape[d] &&
                  region.offset[d] >= destination_region.offset[d] &&
                  region.offset[d] + region.shape[d] <=
                      destination_region.offset[d] + destination_region.shape[d])
        << "CopyRegion: " << RegionToString(region) << " is not inside source "
        << RegionToString(source_region) << " and destination "
        << RegionToString(destination_region);
  }
  // Merge trailing dimensions that the region spans fully in both buffers into one run:
  // dims [first_run_dim, rank) are copied as one contiguous block of `run` elements.
  int first_run_dim = rank;
  int64_t run = 1;
  while (first_run_dim > 0) {
    const int d = first_run_dim - 1;
    run *= region.shape[d];
    --first_run_dim;
    if (region.shape[d] != source_region.shape[d] ||
        region.shape[d] != destination_region.shape[d]) {
      break;
    }
  }
  // Row-major element strides of each buffer.
  std::vector<int64_t> source_stride(rank, 1), destination_stride(rank, 1);
  for (int d = rank - 2; d >= 0; --d) {
    source_stride[d] = source_stride[d + 1] * source_region.shape[d + 1];
    destination_stride[d] = destination_stride[d + 1] * destination_region.shape[d + 1];
  }
  const auto* src = static_cast<const uint8_t*>(source);
  auto* dst = static_cast<uint8_t*>(destination);
  const size_t run_bytes = static_cast<size_t>(run) * element_bytes;
  // Odometer over the dims before the run, starting at the region's first element.
  std::vector<int64_t> index(first_run_dim, 0);
  while (true) {
    int64_t source_element = 0, destination_element = 0;
    for (int d = 0; d < rank; ++d) {
      const int64_t global = region.offset[d] + (d < first_run_dim ? index[d] : 0);
      source_element += (global - source_region.offset[d]) * source_stride[d];
      destination_element += (global - destination_region.offset[d]) * destination_stride[d];
    }
    std::memcpy(dst + destination_element * element_bytes, src + source_element * element_bytes,
                run_bytes);
    int d = first_run_dim - 1;
    while (d >= 0 && ++index[d] == region.shape[d]) index[d--] = 0;
    if (d < 0) break;
  }
}

namespace {

// Appends the regions of the flat range [begin, end) of a box of `shape`, restricted to the
// sub-box whose leading dims [0, dim) are fixed at `prefix` (local coordinates).
void AppendFlatRange(const Shape& shape, int dim, Shape& prefix, int64_t begin, int64_t end,
                     std::vector<Region>& out) {
  if (begin >= end) return;
  const int rank = static_cast<int>(shape.size());
  int64_t inner = 1;  // elements per index of dimension `dim`
  for (int d = dim + 1; d < rank; ++d) inner *= shape[d];
  auto emit = [&](int64_t first, int64_t count) {  // whole sub-rows [first, first+count) of dim
    Region r;
    r.offset = prefix;
    r.shape.assign(prefix.size(), 1);
    r.offset.push_back(first);
    r.shape.push_back(count);
    for (int d = dim + 1; d < rank; ++d) {
      r.offset.push_back(0);
      r.shape.push_back(shape[d]);
    }
    out.push_back(std::move(r));
  };
  int64_t first_full = begin / inner;
  if (begin % inner != 0) {  // a partial leading index of this dim
    const int64_t row = begin / inner;
    const int64_t row_end = std::min(end, (row + 1) * inner);
    prefix.push_back(row);
    AppendFlatRange(shape, dim + 1, prefix, begin - row * inner, row_end - row * inner, out);
    prefix.pop_back();
    first_full = row + 1;
    if (row_end == end) return;
  }
  const int64_t end_full = end / inner;
  if (end_full > first_full) emit(first_full, end_full - first_full);
  if (end % inner != 0 && end_full >= first_full) {  // a partial trailing index
    prefix.push_back(end_full);
    AppendFlatRange(shape, dim + 1, prefix, 0, end - end_full * inner, out);
    prefix.pop_back();
  }
}

}  // namespace

std::vector<Region> FlatRangeToRegions(const Region& box, int64_t begin, int64_t end) {
  const int64_t elements = RegionElements(box);
  AOETRON_CHECK(0 <= begin && begin <= end && end <= elements)
      << "FlatRangeToRegions: range [" << begin << ", " << end << ") of a box of " << elements
      << " elements";
  std::vector<Region> out;
  if (begin == end) return out;
  if (box.shape.empty()) return {box};
  Shape prefix;
  AppendFlatRange(box.shape, 0, prefix, begin, end, out);
  for (Region& r : out) {
    for (size_t d = 0; d < r.offset.size(); ++d) r.offset[d] += box.offset[d];
  }
  return out;
}

std::vector<int> AssignReplicaWriters(std::span<const int64_t> box_bytes, int num_replicas) {
  AOETRON_CHECK(num_replicas >= 1) << "AssignReplicaWriters: " << num_replicas << " replicas";
  std::vector<size_t> order(box_bytes.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return box_bytes[a] > box_bytes[b]; });
  std::vector<int64_t> load(num_replicas, 0);
  std::vector<int> writer(box_bytes.size(), 0);
  for (size_t box : order) {
    const int least = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    writer[box] = least;
    load[least] += box_bytes[box];
  }
  return writer;
}

}  // namespace aoetron::checkpoint
