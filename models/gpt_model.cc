#include "models/gpt_model.h"

#include <algorithm>
#include <cmath>

#include "core/device_transfer.h"
#include "core/ops/elementwise.h"
#include "core/ops/gemm.h"
#include "core/ops/loss_reduction.h"
#include "core/ops/rmsnorm.h"
#include "models/transformer_block.h"
#include "parallel/tensor_parallel.h"

namespace aoetron {

GptModel::GptModel(const ModelConfig& config, Device device, DType dtype)
    : GptModel(config, parallel::SingleProcessGroups(), device, dtype) {}

GptModel::GptModel(const ModelConfig& config, parallel::ProcessGroups& groups, Device device,
                   DType dtype)
    : config_(config),
      groups_(&groups),
      device_(device),
      params_(dtype, groups.grid().tp_rank(), groups.grid().tp_size()) {
  const absl::Status valid = ValidateModelConfig(config);
  AOETRON_CHECK(valid.ok()) << valid.message();
  const absl::Status layout =
      ValidateParallelLayout(config, groups.grid().tp_size(), groups.grid().ep_size());
  AOETRON_CHECK(layout.ok()) << layout.message();
  // Tensor and expert parallelism live in the layers; data parallelism outside the model
  // (gradient sync in the trainer).
  Parameter embedding;
  embedding.name = "embedding.weight";
  embedding.global_shape = {config.vocab_size, config.d_model};
  embedding.sharding = Sharding::TensorSplit(0);  // vocab-parallel
  embedding.init_std = config.init_std;
  embedding_ = params_.Add(std::move(embedding));
  for (int layer = 0; layer < config.n_layers; ++layer) {
    block_first_parameter_.push_back(params_.size());
    blocks_.push_back(std::make_unique<TransformerBlock>(config, layer, &params_, groups));
  }
  Parameter final_norm;
  final_norm.name = "final_norm.weight";
  final_norm.global_shape = {config.d_model};
  final_norm.weight_decay = false;
  final_norm.init_value = 1.0;
  final_norm_ = params_.Add(std::move(final_norm));
  Parameter lm_head;
  lm_head.name = "lm_head.weight";
  lm_head.global_shape = {config.d_model, config.vocab_size};
  lm_head.sharding = Sharding::TensorSplit(1);  // vocab-parallel logits
  lm_head.init_std = config.init_std;
  lm_head_ = params_.Add(std::move(lm_head));
  // GradientsReadyHook's suffixes rely on this order: embedding, blocks, final norm, head.
  AOETRON_CHECK(embedding_ == 0 && final_norm_ + 1 == lm_head_ && lm_head_ + 1 == params_.size());
  params_.Allocate(device);
}

GptModel::~GptModel() = default;

StepOutputs GptModel::ForwardBackward(const Tensor& tokens, const Tensor& targets,
                                      double loss_scale, ActivationArena& arena,
                                      const GradientsReadyHook& gradients_ready) {
  return Run(tokens, targets, loss_scale, /*backward=*/true, arena, gradients_ready);
}

StepOutputs GptModel::Forward(const Tensor& tokens, const Tensor& targets, ActivationArena& arena) {
  return Run(tokens, targets, 0.0f, /*backward=*/false, arena, nullptr);
}

StepOutputs GptModel::Run(const Tensor& tokens, const Tensor& targets, double loss_scale,
                          bool backward, ActivationArena& arena,
                          const GradientsReadyHook& gradients_ready) {
  AOETRON_CHECK(tokens.rank() == 2 && tokens.shape() == targets.shape())
      << "tokens " << tokens.DebugString() << " and targets " << targets.DebugString()
      << " must both be [B, T]";
  const int64_t batch = tokens.dim(0), seq = tokens.dim(1), n = batch * seq;
  const int64_t d = config_.d_model, vocab = config_.vocab_size;
  AOETRON_CHECK(seq <= config_.seq_len) << "sequence length " << seq << " > model.seq_len";
  arena.Reset();
  // The batch may come from the host: one copy of 2·N i32 to the model's device.
  auto on_model_device = [&](const Tensor& ids) {
    if (ids.device() == device_) return ids.Reshape({n});
    Tensor copy = arena.Allocate({n}, DType::kI32);
    CopyAcrossDevices(ids.Reshape({n}), copy);
    return copy;
  };
  const Tensor flat_tokens = on_model_device(tokens);
  const Tensor flat_targets = on_model_device(targets);

  parallel::Communicator& tp = groups_->tensor_parallel();
  Parameter& embedding = params_[embedding_];
  Parameter& lm_head = params_[lm_head_];
  Parameter& final_norm = params_[final_norm_];
  // This rank's vocabulary block [vocab_begin, vocab_begin + V/tp) (the whole V when tp = 1).
  const int64_t vocab_begin = embedding.local_offset[0];
  AOETRON_CHECK_EQ(lm_head.local_offset[1], vocab_begin);

  // Forward: the residual stream x_0 … x_L is kept for backward. It is replicated over tp.
  std::vector<Tensor> stream(blocks_.size() + 1);
  stream[0] = arena.Allocate({n, d}, params_.dtype());
  parallel::VocabParallelEmbeddingForward(tp, flat_tokens, embedding.value, vocab_begin, vocab,
                                          stream[0]);
  for (size_t l = 0; l < blocks_.size(); ++l) {
    stream[l + 1] = arena.Allocate({n, d}, params_.dtype());
    blocks_[l]->Forward(stream[l], batch, seq, stream[l + 1], arena);
  }
  Tensor final_hidden = arena.Allocate({n, d}, params_.dtype());
  Tensor final_rstd = arena.Allocate({n}, AccumulationDType(params_.dtype()));
  ops::RmsNormForward(stream.back(), final_norm.value, static_cast<float>(config_.norm_eps),
                      final_hidden, final_rstd);
  // Vocabulary-parallel LM head: this rank's logit columns only, [N, V/tp].
  Tensor logits = arena.Allocate({n, lm_head.value.dim(1)}, params_.dtype());
  ops::Gemm(final_hidden, false, lm_head.value, false, logits);

  // Loss: mean over the tokens whose target is not ignored (< 0), the same on every tp rank.
  const int64_t counted = ops::CountTargets(flat_targets);
  const double inv_count = counted > 0 ? 1.0 / static_cast<double>(counted) : 0.0;
  Tensor losses = arena.Allocate({n}, AccumulationDType(params_.dtype()));
  if (backward) {
    // logits becomes dlogits = loss_scale/count · (softmax − onehot) over this rank's columns.
    parallel::VocabParallelCrossEntropyForwardBackward(tp, logits, flat_targets, vocab_begin, vocab,
                                                       loss_scale * inv_count, losses, arena);
  } else {
    parallel::VocabParallelCrossEntropyForward(tp, logits, flat_targets, vocab_begin, vocab, losses,
                                               arena);
  }
  StepOutputs out;
  out.loss = ops::SumInOrder(losses) * inv_count;
  for (auto& block : blocks_) out.aux_loss += block->ffn().aux_loss();
  // Routing statistics are copied after backward, which adds its exchange time to them.
  auto copy_layer_stats = [&] {
    for (auto& block : blocks_) {
      if (const ExpertLoadStats* stats = block->ffn().stats()) out.layer_stats.push_back(*stats);
    }
  };
  if (!backward) {
    copy_layer_stats();
    return out;
  }

  // Backward, from the logits down the residual stream. The LM head is column-parallel over the
  // vocabulary: dW_lm is local, d final_hidden is summed over tp.
  const Tensor& dlogits = logits;
  Tensor d_final_hidden = arena.Allocate({n, d}, params_.dtype());
  ops::Gemm(dlogits, false, lm_head.value, true, d_final_hidden);
  parallel::CopyToTensorParallelRegionBackward(tp, d_final_hidden);
  ops::Gemm(final_hidden, true, dlogits, false, lm_head.grad, 1.0f, 1.0f);
  Tensor dx = arena.Allocate({n, d}, params_.dtype());
  ops::Fill(dx, 0.0);
  ops::RmsNormBackward(d_final_hidden, stream.back(), final_norm.value, final_rstd, dx,
                       final_norm.grad);
  auto ready = [&](int first) {
    if (gradients_ready) gradients_ready(first);
  };
  ready(final_norm_);  // final_norm, lm_head: the last two parameters
  Tensor dx_below = arena.Allocate({n, d}, params_.dtype());
  for (size_t l = blocks_.size(); l-- > 0;) {
    // Each layer's backward scratch is released before the next layer's is allocated.
    const ActivationArena::Position before_layer = arena.Mark();
    blocks_[l]->Backward(dx, loss_scale, dx_below, arena);
    arena.Rewind(before_layer);
    std::swap(dx, dx_below);
    ready(block_first_parameter_[l]);
  }
  parallel::VocabParallelEmbeddingBackward(flat_tokens, dx, vocab_begin, vocab, embedding.grad);
  ready(embedding_);
  copy_layer_stats();
  return out;
}

void GptModel::UpdateExpertBiases() {
  for (auto& block : blocks_) block->ffn().UpdateExpertBias();
}

GptModel::KvCache GptModel::NewKvCache(int64_t batch, int64_t capacity) const {
  AOETRON_CHECK(batch >= 1 && capacity >= 1 && capacity <= config_.seq_len)
      << "NewKvCache: batch " << batch << ", capacity " << capacity << " (model.seq_len "
      << config_.seq_len << ")";
  KvCache cache;
  cache.batch = batch;
  cache.capacity = capacity;
  for (const auto& block : blocks_) {
    cache.layers.push_back(
        Tensor::Empty(block->attention().CacheShape(batch, capacity), params_.dtype(), device_));
  }
  return cache;
}

Tensor GptModel::Decode(const Tensor& tokens, KvCache& cache, ActivationArena& arena) {
  AOETRON_CHECK(tokens.rank() == 2 && tokens.dim(0) == cache.batch && tokens.dim(1) >= 1)
      << "Decode: tokens " << tokens.DebugString() << " for a cache of batch " << cache.batch;
  const int64_t batch = tokens.dim(0), count = tokens.dim(1), n = batch * count;
  const int64_t first = cache.length, d = config_.d_model, vocab = config_.vocab_size;
  AOETRON_CHECK(first + count <= cache.capacity)
      << "Decode: positions up to " << first + count << " exceed the cache's " << cache.capacity;
  arena.Reset();
  Tensor flat_tokens = arena.Allocate({n}, DType::kI32);
  CopyAcrossDevices(tokens.Reshape({n}), flat_tokens);
  parallel::Communicator& tp = groups_->tensor_parallel();
  Parameter& embedding = params_[embedding_];
  Parameter& lm_head = params_[lm_head_];
  const int64_t vocab_begin = embedding.local_offset[0];
  Tensor x = arena.Allocate({n, d}, params_.dtype());
  parallel::VocabParallelEmbeddingForward(tp, flat_tokens, embedding.value, vocab_begin, vocab, x);
  for (size_t l = 0; l < blocks_.size(); ++l) {
    Tensor next = arena.Allocate({n, d}, params_.dtype());
    blocks_[l]->Decode(x, batch, first, cache.layers[l], next, arena);
    x = next;
  }
  cache.length = first + count;
  // The last position of each sequence: rows b·count + count − 1.
  Tensor last = arena.Allocate({batch, d}, params_.dtype());
  for (int64_t b = 0; b < batch; ++b) {
    Tensor row = last.Rows(b, b + 1);
    ops::Copy(x.Rows(b * count + count - 1, b * count + count), row);
  }
  Tensor hidden = arena.Allocate({batch, d}, params_.dtype());
  Tensor rstd = arena.Allocate({batch}, AccumulationDType(params_.dtype()));
  ops::RmsNormForward(last, params_[final_norm_].value, static_cast<float>(config_.norm_eps),
                      hidden, rstd);
  const int64_t local_vocab = lm_head.value.dim(1);
  Tensor logits = arena.Allocate({batch, local_vocab}, params_.dtype());
  ops::Gemm(hidden, false, lm_head.value, false, logits);
  Tensor local = Tensor::Empty({batch, local_vocab}, DType::kF32);
  ops::Convert(CopyToDevice(logits, Device::Cpu()), local);
  if (tp.size() == 1) return local;
  // Vocabulary blocks of the tp ranks, in rank order: [tp, B, V/tp] → [B, V].
  parallel::Communicator& host_tp = groups_->Host(parallel::GroupKind::kTensorParallel);
  Tensor gathered = Tensor::Empty({tp.size(), batch, local_vocab}, DType::kF32);
  host_tp.AllGather(local, gathered);
  Tensor full = Tensor::Empty({batch, vocab}, DType::kF32);
  for (int r = 0; r < tp.size(); ++r) {
    for (int64_t b = 0; b < batch; ++b) {
      const float* src = gathered.data<float>() + (r * batch + b) * local_vocab;
      std::copy(src, src + local_vocab, full.data<float>() + b * vocab + r * local_vocab);
    }
  }
  return full;
}

}  // namespace aoetron
