// GptModel: a decoder-only transformer whose feed-forward block is dense SwiGLU, a router MoE,
// or Autonomy-of-Experts.
//
//   x = embedding[tokens]
//   L × { x = x + Attention(RMSNorm(x));  x = x + FFN(RMSNorm(x)) }
//   logits = RMSNorm(x) · W_lm          (untied LM head)
//   loss = mean_t CE(logits_t, target_t) + Σ_layers L_aux
//
// Parameter names (global shapes; weights are stored [in, out], so y = x · W):
//   embedding.weight [V, d]                     final_norm.weight [d]     lm_head.weight [d, V]
//   layers.{l}.attn_norm.weight [d]             layers.{l}.ffn_norm.weight [d]
//   layers.{l}.attn.w_qkv [d, 3, d] = (in, q|k|v, head·head_dim); as a [d, 3d] matrix its
//                                      columns are ordered (q|k|v, head, head_dim)
//   layers.{l}.attn.w_o [d, d]
//   dense:  layers.{l}.ffn.{w_g, w_p} [d, d_ffn], layers.{l}.ffn.w_o [d_ffn, d]
//   MoE:    layers.{l}.ffn.router.weight [d, n]
//           layers.{l}.ffn.experts.{e}.{w_g, w_p} [d, d_ffn], .w_o [d_ffn, d]
//   AoE:    layers.{l}.ffn.w_down [d, n·r]   (Ŵ_down: all experts' W_down side by side)
//           layers.{l}.ffn.experts.{e}.w_up [r, d_wide], .w_p [d, d_wide], .w_o [d_wide, d]
// (W_g, W_p, W_o and W_down, W_up are AOE.md's names: E(x) = (SiLU(x W_g) ⊙ (x W_p)) W_o, and AoE
// factorises W_g = W_down W_up.)
//
// Tensor parallelism (tp ranks, Megatron style; parallel/tensor_parallel.h). Split over tp
// (Parameter::sharding.tensor_parallel_dim, equal contiguous blocks in tp-rank order):
//   embedding.weight dim 0 and lm_head.weight dim 1 (vocabulary-parallel: rank r holds ids
//   [r·V/tp, (r+1)·V/tp); the loss is a vocabulary-parallel cross-entropy, so no rank ever holds
//   a full logits row); attn.w_qkv dim 2 (heads, column-parallel); attn.w_o dim 0 (row-parallel);
//   every FFN/expert w_g, w_up, w_p dim 1 (column-parallel) and w_o dim 0 (row-parallel).
// Replicated over tp: the norm weights, the router weight and AoE's w_down. Activations between
// layers (the residual stream, norm outputs, routing) are replicated and bitwise identical on
// every tp rank, so the gradients of replicated parameters are too: each tp rank holds the full
// gradient (not a share of it). Gradient sync reduces them over dp only, and a global grad norm
// counts them once per tp group (split parameters once per shard).
// Loss, aux loss and layer stats are the same on every tp rank. Collectives per layer and
// micro-batch: attention and FFN each one all-reduce of [N, d] forward and one backward; plus the
// embedding ([N, d]), the LM head's backward ([N, d]) and the loss (3·N f64).
//
// Initialisation: every matrix N(0, init_std²); the residual-output projections (attn.w_o and
// every ffn w_o) N(0, (init_std / sqrt(2L))²); norm weights 1.
//
// Not thread-safe; one model per process (per rank). Kernels inside use all configured threads.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "core/arena.h"
#include "models/expert_stats.h"
#include "models/model_config.h"
#include "models/parameter.h"
#include "parallel/process_groups.h"

namespace aoetron {

class TransformerBlock;

// What one forward(+backward) over a micro-batch measured.
struct StepOutputs {
  double loss = 0.0;      // mean cross-entropy over the micro-batch's (non-ignored) tokens
  double aux_loss = 0.0;  // Σ over layers of the load-balancing loss (0 for dense)
  std::vector<ExpertLoadStats> layer_stats;  // per layer; empty for dense
};

// Called during backward each time a suffix of the parameter set holds its final gradient for
// the call: every parameter with index ≥ `first` (ParameterSet order, which is also the flat
// buffers' order) is complete. Calls come with decreasing `first`, the last one with 0. The
// trainer uses it to start the gradient sync of late layers while early ones still compute.
using GradientsReadyHook = std::function<void(int first)>;

class GptModel {
 public:
  // One rank of a model laid out over `groups` (tp × ep × dp; see parallel/process_grid.h):
  // this rank registers and holds only its shard of every parameter (Parameter::sharding).
  // `groups` must outlive the model; every rank of the job constructs the model alike, and every
  // rank of a tp group passes the same tokens and targets to each call (the calls are collective
  // over tp). The layout must pass ValidateParallelLayout (a CHECK here; launcher/ validates
  // first and reports the error).
  // dtype: f32 for training; f64 for the finite-difference tests (every op supports both).
  GptModel(const ModelConfig& config, parallel::ProcessGroups& groups,
           Device device = Device::Cpu(), DType dtype = DType::kF32);
  // The whole model in one process (parallel::SingleProcessGroups()).
  explicit GptModel(const ModelConfig& config, Device device = Device::Cpu(),
                    DType dtype = DType::kF32);
  ~GptModel();

  const ModelConfig& config() const { return config_; }
  const Device& device() const { return device_; }
  ParameterSet& parameters() { return params_; }
  const ParameterSet& parameters() const { return params_; }

  // tokens, targets: i32 [B, T] with T ≤ seq_len, on the model's device or on the host (then
  // copied over, 2·B·T i32, into the arena). Runs forward and backward and ACCUMULATES
  // gradients of (loss_scale · total loss) into the parameters' grads (call ZeroGrads() between
  // optimizer steps; several calls accumulate micro-batches). Activations come from `arena`,
  // which this call resets at its start. `gradients_ready`, when set, is called as backward
  // finishes the head and final norm, each block, and the embedding (GradientsReadyHook);
  // it may not touch anything of the model but the completed gradients.
  StepOutputs ForwardBackward(const Tensor& tokens, const Tensor& targets, double loss_scale,
                              ActivationArena& arena,
                              const GradientsReadyHook& gradients_ready = nullptr);

  // Forward only (evaluation). Same outputs, no gradients touched.
  StepOutputs Forward(const Tensor& tokens, const Tensor& targets, ActivationArena& arena);

  // ---- Decoding with a KV cache (aoetron-generate) -----------------------------------------
  // Per layer this rank's q, k, v of every position decoded so far, on the model's device.
  struct KvCache {
    std::vector<Tensor> layers;  // CausalSelfAttention::CacheShape(batch, capacity) each
    int64_t batch = 0, capacity = 0;
    int64_t length = 0;  // positions [0, length) are filled
  };
  KvCache NewKvCache(int64_t batch, int64_t capacity) const;
  // Runs tokens [B, n] (host or device) as positions [cache.length, cache.length + n) of the B
  // sequences through every layer, extends the cache, and returns the logits of the last of
  // them: f32 [B, V] on the host, the whole vocabulary on every rank (gathered over tp).
  // Collective over the model's groups like Forward. cache.length + n ≤ cache.capacity ≤
  // model.seq_len. Decoding a prompt in one call and then one token per call gives the logits a
  // full Forward over the same tokens gives, up to summation order.
  Tensor Decode(const Tensor& tokens, KvCache& cache, ActivationArena& arena);

  // Once after every optimizer step: the routed layers' aux-loss-free balancing bias moves by
  // the load of the step's ForwardBackward calls (FeedForward::UpdateExpertBias). Local: the
  // loads are already global.
  void UpdateExpertBiases();

 private:
  StepOutputs Run(const Tensor& tokens, const Tensor& targets, double loss_scale, bool backward,
                  ActivationArena& arena, const GradientsReadyHook& gradients_ready);

  ModelConfig config_;
  parallel::ProcessGroups* groups_;
  Device device_;
  ParameterSet params_;
  int embedding_ = -1, final_norm_ = -1, lm_head_ = -1;
  std::vector<std::unique_ptr<TransformerBlock>> blocks_;
  std::vector<int> block_first_parameter_;  // index of each block's first parameter
};

}  // namespace aoetron
