#include "parallel/tensor_parallel.h"

#include "core/check.h"
#include "core/ops/cross_entropy.h"
#include "core/ops/embedding.h"

namespace aoetron::parallel {
namespace {

// The three stages of the vocabulary-parallel cross-entropy (see the header), each a kernel, with
// the all-reduces between them:
//   1. m = max over tp of the local row maxima
//   2. e = e^(x − m) (stored over x when backward), local Z and the owned target logit; summed
//      over tp
//   3. loss = m + log Z − x_target; backward: x = scale · e / Z, minus scale at the target
// With tp = 1 the fused single-process kernel does the same arithmetic in one visit of each row.
void CrossEntropy(Communicator& tp, Tensor& logits_shard, const Tensor& targets,
                  int64_t vocab_begin, int64_t vocab_size, bool backward, double grad_scale,
                  Tensor& losses, ActivationArena& scratch) {
  AOETRON_CHECK(logits_shard.rank() == 2 && logits_shard.dim(1) >= 1)
      << "VocabParallelCrossEntropy: logits_shard must be [N, V/tp], got "
      << logits_shard.DebugString();
  if (tp.size() == 1) {
    AOETRON_CHECK(vocab_begin == 0 && logits_shard.dim(1) == vocab_size)
        << "VocabParallelCrossEntropy: one rank must hold the whole vocabulary [0, " << vocab_size
        << "), got " << logits_shard.DebugString() << " from " << vocab_begin;
    if (backward) {
      ops::CrossEntropyForwardBackward(logits_shard, targets, grad_scale, losses);
    } else {
      ops::CrossEntropyForward(logits_shard, targets, losses);
    }
    return;
  }
  const int64_t n = logits_shard.dim(0);
  const ActivationArena::Position mark = scratch.Mark();
  Tensor row_max = scratch.Allocate({n}, DType::kF64);
  Tensor sums = scratch.Allocate({2, n}, DType::kF64);  // [Z; x_target]
  // 1. The global row maximum (exact: a max of T values is one of them).
  ops::CrossEntropyShardRowMax(logits_shard, row_max);
  tp.AllReduce(row_max, ReduceOp::kMax);
  // 2. This shard's share of Z and of the target logit.
  ops::CrossEntropyShardSums(logits_shard, targets, vocab_begin, vocab_size, row_max, backward,
                             sums);
  tp.AllReduce(sums, ReduceOp::kSum);
  // 3. Loss, and the gradient over this rank's columns.
  ops::CrossEntropyShardFinish(logits_shard, targets, vocab_begin, row_max, sums, backward,
                               grad_scale, losses);
  scratch.Rewind(mark);
}

}  // namespace

void CopyToTensorParallelRegionBackward(Communicator& tp, Tensor partial_grad) {
  if (tp.size() > 1) tp.AllReduce(partial_grad, ReduceOp::kSum);
}

void ReduceFromTensorParallelRegionForward(Communicator& tp, Tensor partial_output) {
  if (tp.size() > 1) tp.AllReduce(partial_output, ReduceOp::kSum);
}

void VocabParallelEmbeddingForward(Communicator& tp, const Tensor& ids, const Tensor& table_shard,
                                   int64_t vocab_begin, int64_t vocab_size, Tensor& out) {
  ops::EmbeddingShardForward(ids, table_shard, vocab_begin, vocab_size, out);
  // Every row has exactly one non-zero contribution, so the sum is exact.
  ReduceFromTensorParallelRegionForward(tp, out);
}

void VocabParallelEmbeddingBackward(const Tensor& ids, const Tensor& dout, int64_t vocab_begin,
                                    int64_t vocab_size, Tensor& dtable_shard) {
  ops::EmbeddingShardBackward(ids, dout, vocab_begin, vocab_size, dtable_shard);
}

void VocabParallelCrossEntropyForward(Communicator& tp, const Tensor& logits_shard,
                                      const Tensor& targets, int64_t vocab_begin,
                                      int64_t vocab_size, Tensor& losses,
                                      ActivationArena& scratch) {
  // Forward only reads the logits; the stages take them mutable for the backward case.
  Tensor logits = logits_shard;
  CrossEntropy(tp, logits, targets, vocab_begin, vocab_size, /*backward=*/false, 0.0, losses,
               scratch);
}

void VocabParallelCrossEntropyForwardBackward(Communicator& tp, Tensor& logits_shard,
                                              const Tensor& targets, int64_t vocab_begin,
                                              int64_t vocab_size, double grad_scale, Tensor& losses,
                                              ActivationArena& scratch) {
  CrossEntropy(tp, logits_shard, targets, vocab_begin, vocab_size, /*backward=*/true, grad_scale,
               losses, scratch);
}

}  // namespace aoetron::parallel
