#include "core/block_pool.h"

#include "core/check.h"

namespace aoetron {

void BlockPool::AddSegment(uintptr_t base, size_t bytes) {
  AOETRON_CHECK(bytes > 0 && segment_sizes_.count(base) == 0) << "BlockPool: segment " << base;
  segment_sizes_[base] = bytes;
  segment_bytes_ += bytes;
  Block& block = blocks_[base];
  block.size = bytes;
  block.segment = base;
  MarkFree(base, block);
}

void BlockPool::MarkFree(uintptr_t address, Block& block) {
  block.free = true;
  free_.insert({block.size, address});
  free_bytes_ += block.size;
}

std::optional<uintptr_t> BlockPool::Take(size_t bytes) {
  AOETRON_CHECK(bytes > 0) << "BlockPool::Take of 0 bytes";
  auto best = free_.lower_bound({bytes, 0});
  if (best == free_.end()) return std::nullopt;
  const uintptr_t address = best->second;
  free_.erase(best);
  Block& block = blocks_.at(address);
  free_bytes_ -= block.size;
  block.free = false;
  const size_t rest = block.size - bytes;
  if (rest >= min_split_) {
    block.size = bytes;
    Block& tail = blocks_[address + bytes];
    tail.size = rest;
    tail.segment = block.segment;
    MarkFree(address + bytes, tail);
  }
  return address;
}

size_t BlockPool::Give(uintptr_t address) {
  auto it = blocks_.find(address);
  AOETRON_CHECK(it != blocks_.end() && !it->second.free)
      << "BlockPool::Give of an address that is not a taken block: " << address;
  const size_t size = it->second.size;
  // Merge with the next block, then the previous one, when free and of the same segment.
  auto next = std::next(it);
  if (next != blocks_.end() && next->second.free && next->second.segment == it->second.segment) {
    free_.erase({next->second.size, next->first});
    free_bytes_ -= next->second.size;
    it->second.size += next->second.size;
    blocks_.erase(next);
  }
  if (it != blocks_.begin()) {
    auto previous = std::prev(it);
    if (previous->second.free && previous->second.segment == it->second.segment) {
      free_.erase({previous->second.size, previous->first});
      free_bytes_ -= previous->second.size;
      previous->second.size += it->second.size;
      blocks_.erase(it);
      it = previous;
    }
  }
  MarkFree(it->first, it->second);
  return size;
}

std::vector<std::pair<uintptr_t, size_t>> BlockPool::RemoveFreeSegments() {
  std::vector<std::pair<uintptr_t, size_t>> removed;
  for (auto segment = segment_sizes_.begin(); segment != segment_sizes_.end();) {
    auto block = blocks_.find(segment->first);
    if (block != blocks_.end() && block->second.free && block->second.size == segment->second) {
      free_.erase({block->second.size, block->first});
      free_bytes_ -= block->second.size;
      segment_bytes_ -= segment->second;
      removed.emplace_back(segment->first, segment->second);
      blocks_.erase(block);
      segment = segment_sizes_.erase(segment);
    } else {
      ++segment;
    }
  }
  return removed;
}

bool BlockPool::IsTaken(uintptr_t address) const {
  auto it = blocks_.find(address);
  return it != blocks_.end() && !it->second.free;
}

}  // namespace aoetron
