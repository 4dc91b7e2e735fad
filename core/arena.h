// ActivationArena: bump allocation for the tensors of one training step.
//
// Every activation a step needs (layer outputs, what backward saves, scratch) comes from here.
// Allocate() is a pointer bump; Reset() at the start of the next step releases everything at
// once. After the first step the arena holds one block of the peak plus 1/8 headroom, so
// steady-state steps do no heap allocation at all, even when the footprint varies a little from
// step to step (expert parallelism: the pairs a rank receives depend on the routing).
//
// Tensors returned by Allocate() are borrowed views: they are valid until the next Reset() and
// must not be used after it. Mark()/Rewind() release, stack-fashion, everything allocated after
// the mark — backward uses this so one layer's scratch is gone before the next layer's starts.
// Not thread-safe: one arena per training thread of control.
#pragma once

#include <cstddef>
#include <vector>

#include "core/tensor.h"

namespace aoetron {

class ActivationArena {
 public:
  explicit ActivationArena(Device device = Device::Cpu());
  ~ActivationArena();
  ActivationArena(const ActivationArena&) = delete;
  ActivationArena& operator=(const ActivationArena&) = delete;

  // Uninitialised storage for `shape`, 64-byte aligned.
  Tensor Allocate(Shape shape, DType dtype = DType::kF32);
  // Invalidates every tensor handed out so far. If the step needed more than one block, the
  // blocks are replaced by a single block of the peak size plus 1/8.
  void Reset();

  // A position in the arena. Rewind(mark) invalidates every tensor allocated after Mark()
  // returned it and makes that memory available again; earlier tensors stay valid.
  struct Position {
    size_t block = 0;
    size_t offset = 0;
    size_t in_use = 0;
  };
  Position Mark() const { return {current_, block_offset_, in_use_}; }
  void Rewind(const Position& mark);

  size_t bytes_in_use() const { return in_use_; }
  size_t peak_bytes() const { return peak_; }
  size_t capacity_bytes() const;

 private:
  struct Block {
    char* data;
    size_t size;
  };
  void AddBlock(size_t min_bytes);

  Device device_;
  std::vector<Block> blocks_;
  size_t current_ = 0;       // the block allocations come from
  size_t block_offset_ = 0;  // bump offset inside blocks_[current_]
  size_t in_use_ = 0;
  size_t peak_ = 0;
};

}  // namespace aoetron
