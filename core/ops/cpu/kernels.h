// CPU kernels behind the ops in core/ops/*.h (GEMM excepted: core/ops/cpu/gemm_cpu.h).
//
// Each kernel takes raw contiguous arrays and sizes; the dispatch layer (core/ops/<op>.cc) has
// already checked shapes, dtypes and devices. Float kernels are templated on T = float (training)
// or double (the tests' finite-difference reference) and explicitly instantiated for both in
// core/ops/cpu/<op>_cpu.cc. The math and the conventions (forward overwrites, backward
// accumulates, thread-count independent results) are those of the op headers; each kernel file
// repeats the math beside the code.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace aoetron::ops::cpu {

// ---- elementwise_cpu.cc -------------------------------------------------------------------------
// Instantiated for float, double, BFloat16, int32_t, int64_t, uint16_t.
template <typename T>
void Fill(T* x, int64_t n, T value);
void CopyBytes(const void* src, void* dst, size_t nbytes);
// dst[i] = src[i] converted (S, D in float, double, BFloat16; bf16 rounds to nearest even).
template <typename S, typename D>
void Convert(const S* src, int64_t n, D* dst);
template <typename T>
void AddInto(const T* src, T* dst, int64_t n);
template <typename T>
void Axpy(T alpha, const T* x, T* y, int64_t n);
template <typename T>
void Scale(T* x, int64_t n, T alpha);
template <typename T>
double SumSquares(const T* x, int64_t n);

// ---- embedding_cpu.cc ---------------------------------------------------------------------------
// ids: [n] already validated to lie in [0, vocab). table holds rows [row_begin, row_begin + rows)
// of the vocab-row table: other ids read as zero rows and get no gradient.
template <typename T>
void EmbeddingForward(const int32_t* ids, int64_t n, const T* table, int64_t row_begin,
                      int64_t rows, int64_t d, T* out);
template <typename T>
void EmbeddingBackward(const int32_t* ids, int64_t n, const T* dout, int64_t row_begin,
                       int64_t rows, int64_t d, T* dtable);

// ---- rmsnorm_cpu.cc -----------------------------------------------------------------------------
template <typename T>
void RmsNormForward(const T* x, const T* weight, int64_t n, int64_t d, T eps, T* y, T* rstd);
template <typename T>
void RmsNormBackward(const T* dy, const T* x, const T* weight, const T* rstd, int64_t n, int64_t d,
                     T* dx, T* dweight);

// ---- rope_cpu.cc --------------------------------------------------------------------------------
// qkv: [batch, seq, 3, heads, head_dim]; rotates q and k by +angle (inverse = false) or by
// −angle (inverse = true, the backward).
template <typename T>
void Rope(T* qkv, int64_t batch, int64_t seq, int64_t heads, int64_t head_dim, double theta,
          bool inverse, int64_t first_position);

// ---- attention_cpu.cc ---------------------------------------------------------------------------
// qkv: [batch, seq, 3, heads, head_dim], out/dout: [batch, seq, heads, head_dim],
// lse: [batch, heads, seq].
template <typename T>
void CausalAttentionForward(const T* qkv, int64_t batch, int64_t seq, int64_t heads,
                            int64_t head_dim, T* out, T* lse);
template <typename T>
void CausalAttentionBackward(const T* dout, const T* qkv, const T* out, const T* lse, int64_t batch,
                             int64_t seq, int64_t heads, int64_t head_dim, T* dqkv);

// ---- swiglu_cpu.cc ------------------------------------------------------------------------------
template <typename T>
void SwiGluForward(const T* gate, const T* up, int64_t n, T* out);
template <typename T>
void SwiGluBackward(const T* dout, const T* gate, const T* up, int64_t n, T* dgate, T* dup);

// ---- cross_entropy_cpu.cc -----------------------------------------------------------------------
// targets: [n] already validated to lie in [−∞, vocab) (negative = ignored).
template <typename T>
void CrossEntropyForward(const T* logits, const int32_t* targets, int64_t n, int64_t vocab,
                         T* losses);
template <typename T>
void CrossEntropyForwardBackward(T* logits, const int32_t* targets, int64_t n, int64_t vocab,
                                 T grad_scale, T* losses);

// The vocabulary-sharded stages (core/ops/cross_entropy.h); z and x_target: f64 [n].
template <typename T>
void CrossEntropyShardRowMax(const T* logits, int64_t n, int64_t local_vocab, double* row_max);
template <typename T>
void CrossEntropyShardSums(T* logits, const int32_t* targets, int64_t n, int64_t local_vocab,
                           int64_t vocab_begin, const double* row_max, bool store_exp, double* z,
                           double* x_target);
template <typename T>
void CrossEntropyShardFinish(T* logits, const int32_t* targets, int64_t n, int64_t local_vocab,
                             int64_t vocab_begin, const double* row_max, const double* z,
                             const double* x_target, bool backward, double grad_scale, T* losses);

// ---- softmax_cpu.cc -----------------------------------------------------------------------------
template <typename T>
void RowSoftmaxForward(const T* x, int64_t n, int64_t m, T* y);
template <typename T>
void RowSoftmaxBackward(const T* dy, const T* y, int64_t n, int64_t m, T* dx);

// ---- topk_cpu.cc --------------------------------------------------------------------------------
// CHECK-fails on a NaN score.
template <typename T>
void TopK(const T* scores, int64_t n, int64_t m, int64_t k, T* values, int32_t* indices);
// indices already validated to lie in [0, m).
template <typename T>
void TopKBackward(const T* dvalues, const int32_t* indices, int64_t n, int64_t m, int64_t k,
                  T* dscores);

// ---- grouped_l2_norm_cpu.cc ---------------------------------------------------------------------
template <typename T>
void GroupedL2Norm(const T* c, int64_t n, int64_t groups, int64_t width, T* norms);
template <typename T>
void GroupedL2NormBackward(const T* dnorms, const T* c, const T* norms, int64_t n, int64_t groups,
                           int64_t width, T* dc);

// ---- expert_permute_cpu.cc ----------------------------------------------------------------------
// expert_index: [pairs] (the [n, k] choices in pair order) already validated to lie in
// [0, experts). counts: [experts], offsets: [experts + 1], position: [pairs]. keep_limit: null
// (dropless) or [experts]: expert e keeps its first keep_limit[e] pairs in pair order, counts are
// the kept pairs, and dropped pairs take the rows after offsets[experts] in pair order.
void BuildExpertLayout(const int32_t* expert_index, int64_t pairs, int64_t experts,
                       const int64_t* keep_limit, int64_t* counts, int64_t* offsets,
                       int32_t* position);
// position entries already validated to lie in [0, n·k). x: [n, d], grouped: [n·k, d].
template <typename T>
void PermuteRows(const T* x, const int32_t* position, int64_t n, int64_t k, int64_t d, T* grouped);
template <typename T>
void PermuteRowsBackward(const T* dgrouped, const int32_t* position, int64_t n, int64_t k,
                         int64_t d, T* dx);
// c: [n, experts · r], grouped: [n·k, r].
template <typename T>
void GatherExpertSlices(const T* c, const int32_t* expert_index, const int32_t* position, int64_t n,
                        int64_t k, int64_t experts, int64_t r, T* grouped);
template <typename T>
void GatherExpertSlicesBackward(const T* dgrouped, const int32_t* expert_index,
                                const int32_t* position, int64_t n, int64_t k, int64_t experts,
                                int64_t r, T* dc);
// expert_out: [n·k, d], weights: [n, k], y: [n, d].
template <typename T>
void CombineRows(const T* expert_out, const int32_t* position, const T* weights, int64_t n,
                 int64_t k, int64_t d, T* y);
template <typename T>
void CombineRowsBackward(const T* dy, const T* expert_out, const int32_t* position,
                         const T* weights, int64_t n, int64_t k, int64_t d, T* d_expert_out,
                         T* dweights);

// ---- expert_slices_cpu.cc (core/ops/expert_slices.h) -------------------------------------------
// expert_index entries already validated. c: [n, experts·r], slots: [n, k·r].
template <typename T>
void TakeExpertSlices(const T* c, const int32_t* expert_index, int64_t n, int64_t k,
                      int64_t experts, int64_t r, T* slots);
// dc: [n, block·r], the experts [first, first + block).
template <typename T>
void TakeExpertSlicesBackward(const T* dslots, const int32_t* expert_index, int64_t n, int64_t k,
                              int64_t first, int64_t block, int64_t r, T* dc);
// x: [n, d], w: [d, experts·r], slots: [n, k·r].
template <typename T>
void ExpertSliceProduct(const T* x, const T* w, const int32_t* expert_index, int64_t n, int64_t k,
                        int64_t d, int64_t experts, int64_t r, T* slots);

// ---- column_block_cpu.cc (core/ops/column_block.h) ---------------------------------------------
// Byte-wise: rows of src_row_bytes / dst_row_bytes; the block starts at the given byte offset.
void CopyColumns(const void* src, int64_t src_row_bytes, int64_t src_offset, void* dst,
                 int64_t dst_row_bytes, int64_t dst_offset, int64_t rows, int64_t block_bytes);
// In elements: src [rows, src_cols], dst [rows, dst_cols].
template <typename T>
void AddColumns(const T* src, int64_t src_cols, int64_t src_col, T* dst, int64_t dst_cols,
                int64_t dst_col, int64_t rows, int64_t width);

}  // namespace aoetron::ops::cpu
