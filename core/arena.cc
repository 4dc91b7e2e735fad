#include "core/arena.h"

#include <algorithm>

#include "core/allocator.h"

namespace aoetron {
namespace {
constexpr size_t kAlignment = 64;
constexpr size_t kMinBlockBytes = size_t{1} << 20;
// Headroom of the consolidated block over the peak, as a fraction (1/8). Expert parallelism makes
// a step's footprint data dependent (the pairs a rank receives vary by several percent from step
// to step), and every new peak without headroom would replace the block: hundreds of MB of fresh
// pages faulted in by one rank while the others wait for it in the next all-to-all.
constexpr size_t kHeadroomDivisor = 8;
size_t AlignUp(size_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }
}  // namespace

ActivationArena::ActivationArena(Device device) : device_(device) {}

ActivationArena::~ActivationArena() {
  for (Block& b : blocks_) AllocatorFor(device_.kind).Free(b.data);
}

size_t ActivationArena::capacity_bytes() const {
  size_t total = 0;
  for (const Block& b : blocks_) total += b.size;
  return total;
}

void ActivationArena::AddBlock(size_t min_bytes) {
  const size_t previous = blocks_.empty() ? 0 : blocks_.back().size;
  const size_t size = std::max({min_bytes, kMinBlockBytes, 2 * previous});
  blocks_.push_back(
      {static_cast<char*>(AllocatorFor(device_.kind).Allocate(size, device_.index)), size});
  current_ = blocks_.size() - 1;
  block_offset_ = 0;
}

Tensor ActivationArena::Allocate(Shape shape, DType dtype) {
  const size_t bytes = AlignUp(static_cast<size_t>(NumElements(shape)) * SizeOf(dtype));
  // Move forward through blocks kept from before a Rewind(); add one when none fits. Skipped
  // tails are wasted only until the next Reset() folds everything into one block.
  while (blocks_.empty() || block_offset_ + bytes > blocks_[current_].size) {
    if (current_ + 1 < blocks_.size()) {
      ++current_;
      block_offset_ = 0;
    } else {
      AddBlock(bytes);
    }
  }
  char* ptr = blocks_[current_].data + block_offset_;
  block_offset_ += bytes;
  in_use_ += bytes;
  peak_ = std::max(peak_, in_use_);
  return Tensor::Wrap(ptr, std::move(shape), dtype, device_);
}

void ActivationArena::Reset() {
  if (blocks_.size() > 1) {
    for (Block& b : blocks_) AllocatorFor(device_.kind).Free(b.data);
    blocks_.clear();
    AddBlock(peak_ + peak_ / kHeadroomDivisor);
  }
  current_ = 0;
  block_offset_ = 0;
  in_use_ = 0;
}

void ActivationArena::Rewind(const Position& mark) {
  AOETRON_CHECK(mark.in_use <= in_use_) << "Rewind to a position past the current one";
  current_ = mark.block;
  block_offset_ = mark.offset;
  in_use_ = mark.in_use;
}

}  // namespace aoetron
