// CUDA kernels behind the ops in core/ops/*.h (plain C++ declarations: no CUDA header needed).
//
// The dispatch layer (core/ops/<op>.cc) has checked shapes, dtypes and devices; these functions
// trust their arguments, except that kernels reading an index operand (ids, targets, indices,
// positions, expert indices) check each entry and report a bad one at the next synchronisation
// (core/cuda/device_errors.h) instead of reading out of bounds.
//
// Every function enqueues its work on the compute stream of `device` (core/cuda/device_context.h)
// and returns without waiting, unless it says it synchronises. Pointers are device pointers.
// `dtype` names the element type of every `void*` float array: f32 or bf16. Statistics saved for
// backward (rstd, lse) and losses are always f32 (`float*`): reductions stay in fp32 in bf16 mode.
// The math, and "forward overwrites, backward accumulates", are those of the op headers; each
// kernel file repeats the math beside the code.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace aoetron::ops::cuda {

// ---- pointwise_kernels.cu -----------------------------------------------------------------------
// x[0..n) = the element whose bytes are the low `element_bytes` bytes of `pattern` (2, 4 or 8).
void Fill(int device, void* x, int64_t n, size_t element_bytes, uint64_t pattern);
void AddInto(int device, DType dtype, const void* src, void* dst, int64_t n);
void Axpy(int device, DType dtype, float alpha, const void* x, void* y, int64_t n);
void Scale(int device, DType dtype, void* x, int64_t n, float alpha);
// Σ x² in f64 over fixed chunks, combined in a fixed order. Synchronises (returns the value).
double SumSquares(int device, DType dtype, const void* x, int64_t n);
// dst = src converted (f32 ↔ bf16, or a copy when the dtypes match); bf16 rounds to nearest even.
void Convert(int device, DType src_dtype, const void* src, DType dst_dtype, void* dst, int64_t n);

void SwiGluForward(int device, DType dtype, const void* gate, const void* up, int64_t n, void* out);
void SwiGluBackward(int device, DType dtype, const void* dout, const void* gate, const void* up,
                    int64_t n, void* dgate, void* dup);

// qkv: [batch, seq, 3, heads, head_dim], rotated in place (q and k), by −angle when inverse.
void Rope(int device, DType dtype, void* qkv, int64_t batch, int64_t seq, int64_t heads,
          int64_t head_dim, double theta, bool inverse, int64_t first_position);

// ids: [n] in [0, vocab); table/dtable: [vocab, d]; out/dout: [n, d].
// table holds rows [row_begin, row_begin + rows) of a vocab-row table (tensor parallelism): ids
// outside it read as zero rows and get no gradient; ids outside [0, vocab) are device errors.
void EmbeddingForward(int device, DType dtype, const int32_t* ids, int64_t n, const void* table,
                      int64_t vocab, int64_t row_begin, int64_t rows, int64_t d, void* out);
void EmbeddingBackward(int device, DType dtype, const int32_t* ids, int64_t n, const void* dout,
                       int64_t vocab, int64_t row_begin, int64_t rows, int64_t d, void* dtable);

// AdamW on f32 master weights (core/optim/adamw.h); inv_bias_correction{1,2} = 1 / (1 − β^s).
void AdamW(int device, float* param, const float* grad, float* m, float* v, int64_t n, float lr,
           float weight_decay, float beta1, float beta2, float eps, float inv_bias_correction1,
           float inv_bias_correction2);

// ---- row_kernels.cu -----------------------------------------------------------------------------
void RmsNormForward(int device, DType dtype, const void* x, const void* weight, int64_t n,
                    int64_t d, float eps, void* y, float* rstd);
void RmsNormBackward(int device, DType dtype, const void* dy, const void* x, const void* weight,
                     const float* rstd, int64_t n, int64_t d, void* dx, void* dweight);

void RowSoftmaxForward(int device, DType dtype, const void* x, int64_t n, int64_t m, void* y);
void RowSoftmaxBackward(int device, DType dtype, const void* dy, const void* y, int64_t n,
                        int64_t m, void* dx);

// targets: [n], negative = ignored, ≥ vocab = device error.
void CrossEntropyForward(int device, DType dtype, const void* logits, const int32_t* targets,
                         int64_t n, int64_t vocab, float* losses);
void CrossEntropyForwardBackward(int device, DType dtype, void* logits, const int32_t* targets,
                                 int64_t n, int64_t vocab, double grad_scale, float* losses);

// ---- cross_entropy_shard_kernels.cu: the vocabulary-parallel stages (core/ops/cross_entropy.h) --
// logits: [n, local_vocab] f32 or bf16; row_max, z, x_target: f64 [n]; losses f32 [n]. A target
// ≥ vocab_size is a device error.
void CrossEntropyShardRowMax(int device, DType dtype, const void* logits, int64_t n,
                             int64_t local_vocab, double* row_max);
void CrossEntropyShardSums(int device, DType dtype, void* logits, const int32_t* targets, int64_t n,
                           int64_t local_vocab, int64_t vocab_begin, int64_t vocab_size,
                           const double* row_max, bool store_exp, double* z, double* x_target);
void CrossEntropyShardFinish(int device, DType dtype, void* logits, const int32_t* targets,
                             int64_t n, int64_t local_vocab, int64_t vocab_begin,
                             const double* row_max, const double* z, const double* x_target,
                             bool backward, double grad_scale, float* losses);

// ---- routing_kernels.cu -------------------------------------------------------------------------
void TopK(int device, DType dtype, const void* scores, int64_t n, int64_t m, int64_t k,
          void* values, int32_t* indices);
void TopKBackward(int device, DType dtype, const void* dvalues, const int32_t* indices, int64_t n,
                  int64_t m, int64_t k, void* dscores);

void GroupedL2Norm(int device, DType dtype, const void* c, int64_t n, int64_t groups, int64_t width,
                   void* norms);
void GroupedL2NormBackward(int device, DType dtype, const void* dnorms, const void* c,
                           const void* norms, int64_t n, int64_t groups, int64_t width, void* dc);
// Fused AoE selection (core/ops/aoe_gate.h): norms, top-k of the norms, softmax over the top-k.
void AoeGate(int device, DType dtype, const void* c, int64_t n, int64_t groups, int64_t width,
             int64_t k, void* norms, void* top_values, int32_t* top_index, void* gate_weights);

void PermuteRows(int device, DType dtype, const void* x, const int32_t* position, int64_t n,
                 int64_t k, int64_t d, void* grouped);
void PermuteRowsBackward(int device, DType dtype, const void* dgrouped, const int32_t* position,
                         int64_t n, int64_t k, int64_t d, void* dx);
void GatherExpertSlices(int device, DType dtype, const void* c, const int32_t* expert_index,
                        const int32_t* position, int64_t n, int64_t k, int64_t experts, int64_t r,
                        void* grouped);
void GatherExpertSlicesBackward(int device, DType dtype, const void* dgrouped,
                                const int32_t* expert_index, const int32_t* position, int64_t n,
                                int64_t k, int64_t experts, int64_t r, void* dc);
void CombineRows(int device, DType dtype, const void* expert_out, const int32_t* position,
                 const void* weights, int64_t n, int64_t k, int64_t d, void* y);
void CombineRowsBackward(int device, DType dtype, const void* dy, const void* expert_out,
                         const int32_t* position, const void* weights, int64_t n, int64_t k,
                         int64_t d, void* d_expert_out, void* dweights);

// ---- row_movement_kernels.cu (core/ops/row_movement.h) ----------------------------------------
// Row indices are i32 device arrays (null: the identity); src_count / dst_count bound them (a bad
// one is a device error). CopyRows moves row_bytes per row; AddRows and SegmentSumRows take f32
// or bf16 rows of w elements and compute in f32. begin: i64 [segments + 1].
void CopyRows(int device, const void* src, const int32_t* src_rows, int64_t src_count, void* dst,
              const int32_t* dst_rows, int64_t dst_count, int64_t m, int64_t row_bytes);
void AddRows(int device, DType dtype, const void* src, const int32_t* src_rows, int64_t src_count,
             void* dst, const int32_t* dst_rows, int64_t dst_count, int64_t m, int64_t w);
// SegmentSumRows: segment s sums src_rows[begin[s] .. begin[s+1]) (index_count entries in all);
// an empty, backward or out-of-range segment is a device error.
void SegmentSumRows(int device, DType dtype, const void* src, const int32_t* src_rows,
                    int64_t src_count, int64_t index_count, const int64_t* begin, int64_t segments,
                    void* dst, int64_t w);

// ---- routing_statistics_kernels.cu (core/ops/routing_statistics.h) ------------------------------
// RoutingStatisticsPartials: per chunk of kStatChunk tokens, 2n + 1 doubles into `partials`
// ([chunks, 2n + 1]: pairs per expert, Σ q per expert, Σ entropy); the caller adds the chunks in
// order. row (AddRowVector): n doubles on the device.
constexpr int64_t kStatChunk = 256;
void RoutingStatisticsPartials(int device, DType dtype, const int32_t* top_index, const void* probs,
                               int64_t tokens, int64_t n, int64_t k, double* partials);
void TakeAlongRows(int device, DType dtype, const void* x, const int32_t* index, int64_t tokens,
                   int64_t n, int64_t k, void* out);
void AddRowVector(int device, DType dtype, const double* row, int64_t tokens, int64_t n, void* x);

// ---- router_score_kernels.cu (core/ops/router_scores.h) ----------------------------------------
// Element-wise over n elements, or one thread per row of m columns (m: experts, a few hundred).
void Sigmoid(int device, DType dtype, const void* x, int64_t n, void* y);
void SigmoidBackward(int device, DType dtype, const void* dy, const void* y, int64_t n, void* dx);
void RowNormalize(int device, DType dtype, const void* x, int64_t rows, int64_t m, void* y);
void RowNormalizeBackward(int device, DType dtype, const void* dy, const void* y, const void* x,
                          int64_t rows, int64_t m, void* dx);
void RowLogSumExp(int device, DType dtype, const void* x, int64_t rows, int64_t m, void* lse);
void LogSumExpSquareBackward(int device, DType dtype, const void* x, const void* lse, double scale,
                             int64_t rows, int64_t m, void* dx);

// ---- cached_attention.cu (core/ops/cached_attention.h) ------------------------------------------
void CachedCausalAttention(int device, DType dtype, const void* cache, int64_t batch,
                           int64_t capacity, int64_t heads, int64_t head_dim, int64_t first,
                           int64_t count, void* out);

// ---- attention_kernels.cu -----------------------------------------------------------------------
// qkv: [batch, seq, 3, heads, head_dim], out/dout: [batch, seq, heads, head_dim],
// lse: [batch, heads, seq] f32. head_dim ≤ kMaxAttentionHeadDim.
constexpr int64_t kMaxAttentionHeadDim = 256;
void CausalAttentionForward(int device, DType dtype, const void* qkv, int64_t batch, int64_t seq,
                            int64_t heads, int64_t head_dim, void* out, float* lse);
void CausalAttentionBackward(int device, DType dtype, const void* dout, const void* qkv,
                             const void* out, const float* lse, int64_t batch, int64_t seq,
                             int64_t heads, int64_t head_dim, void* dqkv);

// ---- aoe_block_kernels.cu (core/ops/expert_slices.h, core/ops/column_block.h) -----------------
// Slot tensors [n, k·r]; expert indices are checked as they are read.
void TakeExpertSlices(int device, DType dtype, const void* c, const int32_t* expert_index,
                      int64_t n, int64_t k, int64_t experts, int64_t r, void* slots);
void TakeExpertSlicesBackward(int device, DType dtype, const void* dslots,
                              const int32_t* expert_index, int64_t n, int64_t k, int64_t experts,
                              int64_t first, int64_t block, int64_t r, void* dc);
void ExpertSliceProduct(int device, DType dtype, const void* x, const void* w,
                        const int32_t* expert_index, int64_t n, int64_t k, int64_t d,
                        int64_t experts, int64_t r, void* slots);
// Byte-wise 2-D copy (cudaMemcpy2DAsync on the compute stream).
void CopyColumns(int device, const void* src, int64_t src_row_bytes, int64_t src_offset, void* dst,
                 int64_t dst_row_bytes, int64_t dst_offset, int64_t rows, int64_t block_bytes);
void AddColumns(int device, DType dtype, const void* src, int64_t src_cols, int64_t src_col,
                void* dst, int64_t dst_cols, int64_t dst_col, int64_t rows, int64_t width);

// ---- gemm_cublaslt.cc ---------------------------------------------------------------------------
// Row-major C[M, N] = alpha · op(A) · op(B) + beta · C through cuBLASLt (core/ops/gemm.h).
// f32: f32 operands, f32 compute (no TF32), for parity. bf16: bf16 operands, f32 accumulation
// and f32 alpha/beta; C (`c_dtype`) bf16 or f32.
void Gemm(int device, DType dtype, DType c_dtype, bool trans_a, bool trans_b, int64_t m, int64_t n,
          int64_t k, float alpha, const void* a, const void* b, float beta, void* c);

}  // namespace aoetron::ops::cuda
