// BlockPool: the address bookkeeping of a caching allocator's large blocks — best fit, splitting
// and merging — kept apart from the memory itself, so that it is tested without a GPU
// (tests/core/block_pool_test.cc) and the CUDA allocator only adds cudaMalloc/cudaFree around it.
//
// Memory arrives as segments (one cudaMalloc each). A request takes the smallest free block that
// holds it (best fit; ties: the lowest address); when the rest is at least `min_split` bytes the
// block is split and the rest stays free. A returned block merges with the free blocks beside it
// in its segment, so memory freed by one step's data-dependent sizes (MoE expert blocks, the
// all-to-all payloads) serves the next step's other sizes instead of the reserve growing.
// Addresses are plain integers here; sizes are whatever unit the caller rounds to.
// Not thread-safe (the allocator holds its lock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

namespace aoetron {

class BlockPool {
 public:
  explicit BlockPool(size_t min_split) : min_split_(min_split) {}

  // A new segment [base, base + bytes), all free.
  void AddSegment(uintptr_t base, size_t bytes);
  // The address of a block of exactly `bytes` (split off the front of the best-fitting free
  // block), or nullopt when no free block holds `bytes`. bytes > 0.
  std::optional<uintptr_t> Take(size_t bytes);
  // Returns a block handed out by Take (its address); merges it with free neighbours. Returns the
  // block's size. CHECK-fails for an address that is not a taken block.
  size_t Give(uintptr_t address);
  // Removes every segment that is entirely free and returns them as (base, bytes), for the caller
  // to give back to the device (out-of-memory retry, ReleaseCachedBlocks).
  std::vector<std::pair<uintptr_t, size_t>> RemoveFreeSegments();

  bool IsTaken(uintptr_t address) const;
  size_t free_bytes() const { return free_bytes_; }
  size_t segment_bytes() const { return segment_bytes_; }
  int64_t segments() const { return static_cast<int64_t>(segment_sizes_.size()); }

 private:
  struct Block {
    size_t size = 0;
    uintptr_t segment = 0;  // base of the segment it belongs to
    bool free = true;
  };
  void MarkFree(uintptr_t address, Block& block);

  size_t min_split_;
  std::map<uintptr_t, Block> blocks_;            // every block, by address
  std::set<std::pair<size_t, uintptr_t>> free_;  // free blocks by (size, address): best fit
  std::map<uintptr_t, size_t> segment_sizes_;    // segment base → bytes
  size_t free_bytes_ = 0, segment_bytes_ = 0;
};

}  // namespace aoetron
