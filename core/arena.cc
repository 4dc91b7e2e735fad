#include "core/arena.h"

#include <algorithm>

#include "core/allocator.h"

namespace aoetron {
namespace {
constexpr size_t kAlignment = 64;
constexpr size_t kMinBlockBytes = size_t{1} << 20;
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
  blocks_.push_back({static_cast<char*>(AllocatorFor(device_.kind).Allocate(size)), size});
  block_offset_ = 0;
}

Tensor ActivationArena::Allocate(Shape shape, DType dtype) {
  const size_t bytes = AlignUp(static_cast<size_t>(NumElements(shape)) * SizeOf(dtype));
  if (blocks_.empty() || block_offset_ + bytes > blocks_.back().size) AddBlock(bytes);
  char* ptr = blocks_.back().data + block_offset_;
  block_offset_ += bytes;
  in_use_ += bytes;
  peak_ = std::max(peak_, in_use_);
  return Tensor::Wrap(ptr, std::move(shape), dtype, device_);
}

void ActivationArena::Reset() {
  if (blocks_.size() > 1) {
    for (Block& b : blocks_) AllocatorFor(device_.kind).Free(b.data);
    blocks_.clear();
    AddBlock(peak_);
  }
  block_offset_ = 0;
  in_use_ = 0;
}

}  // namespace aoetron
