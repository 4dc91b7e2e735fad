// The dense-model kernels on CUDA against the CPU backend: embedding, RMSNorm, RoPE, causal
// attention, SwiGLU, row softmax, softmax cross-entropy — forward and backward, f32 and bf16.
//
// Reference: the CPU op in f64 on the same (dtype-representable) inputs. Tolerances are on
// ‖gpu − ref‖₂ / ‖ref‖₂ and come from the arithmetic, not from runs:
//   kPointwise   1e-6  one f32 rounding per op per element (≈ 6e-8) and expf's ≤ 2 ulp
//   kRowReduce   2e-6  an f32 sum over a row of ≤ 1000 terms in a tree: ≈ log2(1000)·6e-8 worst
//   kAttention   1e-5  sums over T keys and hd columns, exp and log; backward subtracts the row
//                      term D from dP, which loses a few bits where they nearly cancel
//   kBf16Tolerance        1e-2  outputs stored in bf16 (2^-9 ≈ 2e-3 relative each) plus bf16 inputs
//   of
//                      later stages
// Where the GPU performs the CPU's own sequence of f32 operations (embedding backward, the
// gathers), the f32 result is compared bit for bit with the CPU's f32 kernel instead.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/ops/attention.h"
#include "core/ops/cross_entropy.h"
#include "core/ops/embedding.h"
#include "core/ops/rmsnorm.h"
#include "core/ops/rope.h"
#include "core/ops/softmax.h"
#include "core/ops/swiglu.h"
#include "tests/cuda/cuda_test_util.h"

namespace aoetron::cudatest {
namespace {

constexpr double kPointwise = 1e-6;
constexpr double kRowReduce = 2e-6;
constexpr double kAttention = 1e-5;

// Saved statistics (rstd, lse) and losses are f32 on CUDA in both modes.
constexpr DType kStats = DType::kF32;

class CudaOps : public CudaTest {};

constexpr DType kDTypes[] = {DType::kF32, DType::kBF16};

// ---- Embedding ----------------------------------------------------------------------------------

TEST_F(CudaOps, EmbeddingForwardCopiesRowsAndBackwardAddsInTokenOrder) {
  SCOPED_TRACE(seed());
  const int64_t vocab = 97, d = 130, n = 300;  // n ≫ vocab: many repeated ids
  const Tensor ids = RandomIndex({n}, rng(), 0, static_cast<int32_t>(vocab));
  const Tensor ids_dev = UploadIndex(ids);
  for (DType dtype : kDTypes) {
    const Tensor table = Representable(Uniform({vocab, d}, rng()), dtype);
    Tensor out_ref = Tensor::Empty({n, d}, DType::kF64);
    ops::EmbeddingForward(ids, table, out_ref);
    Tensor out = Poisoned({n, d}, dtype);
    ops::EmbeddingForward(ids_dev, Upload(table, dtype), out);
    EXPECT_EQ(CountMismatches(Download(out), out_ref), 0) << DTypeName(dtype);

    const Tensor dout = Representable(Uniform({n, d}, rng()), dtype);
    const Tensor dtable_start = Representable(Uniform({vocab, d}, rng()), dtype);
    Tensor dtable = Upload(dtable_start, dtype);
    ops::EmbeddingBackward(ids_dev, Upload(dout, dtype), dtable);
    if (dtype == DType::kF32) {
      // The CPU's f32 kernel adds the same values in the same order: identical bits.
      Tensor dtable_cpu = HostF32(dtable_start);
      ops::EmbeddingBackward(ids, HostF32(dout), dtable_cpu);
      EXPECT_EQ(CountMismatches(Download(dtable), Download(dtable_cpu)), 0);
    } else {
      Tensor dtable_ref = CloneHost(dtable_start);
      ops::EmbeddingBackward(ids, dout, dtable_ref);
      ExpectClose("EmbeddingBackward", dtype, dtable, dtable_ref, 0.0);
    }
  }
}

// ---- RMSNorm ------------------------------------------------------------------------------------

TEST_F(CudaOps, RmsNormMatchesCpu) {
  SCOPED_TRACE(seed());
  constexpr float kEps = 1e-5f;
  for (int64_t d : {1, 200, 1000}) {
    const int64_t n = 300;
    for (DType dtype : kDTypes) {
      const std::string at = " d=" + std::to_string(d);
      const Tensor x = Representable(Uniform({n, d}, rng(), -3.0, 3.0), dtype);
      const Tensor w = Representable(Uniform({d}, rng(), 0.5, 1.5), dtype);
      Tensor y_ref = Tensor::Empty({n, d}, DType::kF64), rstd_ref = Tensor::Empty({n}, DType::kF64);
      ops::RmsNormForward(x, w, kEps, y_ref, rstd_ref);
      const Tensor x_dev = Upload(x, dtype), w_dev = Upload(w, dtype);
      Tensor y = Poisoned({n, d}, dtype), rstd = Poisoned({n}, kStats);
      ops::RmsNormForward(x_dev, w_dev, kEps, y, rstd);
      ExpectClose("RmsNormForward y" + at, dtype, y, y_ref, kRowReduce);
      // rstd is f32 in both modes: an f32 reduction of bf16 inputs stays at f32 accuracy.
      ExpectClose("RmsNormForward rstd" + at, DType::kF32, rstd, rstd_ref, kRowReduce);

      const Tensor dy = Representable(Uniform({n, d}, rng()), dtype);
      const Tensor dx_start = Representable(Uniform({n, d}, rng()), dtype);
      const Tensor dw_start = Representable(Uniform({d}, rng()), dtype);
      Tensor dx_ref = CloneHost(dx_start), dw_ref = CloneHost(dw_start);
      ops::RmsNormBackward(dy, x, w, rstd_ref, dx_ref, dw_ref);
      Tensor dx = Upload(dx_start, dtype), dw = Upload(dw_start, dtype);
      ops::RmsNormBackward(Upload(dy, dtype), x_dev, w_dev, rstd, dx, dw);
      ExpectClose("RmsNormBackward dx" + at, dtype, dx, dx_ref, kRowReduce);
      ExpectClose("RmsNormBackward dweight" + at, dtype, dw, dw_ref, kRowReduce);
    }
  }
}

// ---- RoPE ---------------------------------------------------------------------------------------

TEST_F(CudaOps, RopeRotatesQAndKAndItsBackwardIsTheInverse) {
  SCOPED_TRACE(seed());
  for (int64_t head_dim : {64, 38}) {
    const int64_t batch = 2, seq = 50, heads = 3;
    const Shape shape{batch, seq, 3, heads, head_dim};
    for (DType dtype : kDTypes) {
      const std::string at = " hd=" + std::to_string(head_dim);
      const Tensor qkv = Representable(Uniform(shape, rng()), dtype);
      Tensor ref = CloneHost(qkv);
      ops::RopeForward(ref, 10000.0f);
      Tensor got = Upload(qkv, dtype);
      ops::RopeForward(got, 10000.0f);
      // f32 also carries the f32 rounding of the cos/sin table (the CPU f64 reference has none).
      ExpectClose("RopeForward" + at, dtype, got, ref, kPointwise);
      const Tensor dqkv = Representable(Uniform(shape, rng()), dtype);
      Tensor dref = CloneHost(dqkv);
      ops::RopeBackward(dref, 10000.0f);
      Tensor dgot = Upload(dqkv, dtype);
      ops::RopeBackward(dgot, 10000.0f);
      ExpectClose("RopeBackward" + at, dtype, dgot, dref, kPointwise);
    }
  }
}

// ---- Attention ----------------------------------------------------------------------------------

void CheckAttention(std::mt19937_64& rng, int64_t batch, int64_t seq, int64_t heads,
                    int64_t head_dim) {
  const std::string at = " B=" + std::to_string(batch) + " T=" + std::to_string(seq) +
                         " H=" + std::to_string(heads) + " hd=" + std::to_string(head_dim);
  const Shape qkv_shape{batch, seq, 3, heads, head_dim};
  const Shape out_shape{batch, seq, heads, head_dim};
  for (DType dtype : kDTypes) {
    const Tensor qkv = Representable(Uniform(qkv_shape, rng, -2.0, 2.0), dtype);
    Tensor out_ref = Tensor::Empty(out_shape, DType::kF64);
    Tensor lse_ref = Tensor::Empty({batch, heads, seq}, DType::kF64);
    ops::CausalAttentionForward(qkv, out_ref, lse_ref);
    const Tensor qkv_dev = Upload(qkv, dtype);
    Tensor out = Poisoned(out_shape, dtype), lse = Poisoned({batch, heads, seq}, kStats);
    ops::CausalAttentionForward(qkv_dev, out, lse);
    ExpectClose("AttentionForward out" + at, dtype, out, out_ref, kAttention);
    ExpectClose("AttentionForward lse" + at, DType::kF32, lse, lse_ref, kAttention);

    // Backward from the reference's own saved out and lse (rounded to what the GPU stores), so
    // the comparison isolates the backward kernels.
    const Tensor dout = Representable(Uniform(out_shape, rng), dtype);
    const Tensor dqkv_start = Representable(Uniform(qkv_shape, rng), dtype);
    Tensor dqkv_ref = CloneHost(dqkv_start);
    ops::CausalAttentionBackward(dout, qkv, out_ref, lse_ref, dqkv_ref);
    Tensor dqkv = Upload(dqkv_start, dtype);
    ops::CausalAttentionBackward(Upload(dout, dtype), qkv_dev, Upload(out_ref, dtype),
                                 Upload(lse_ref, DType::kF32), dqkv);
    ExpectClose("AttentionBackward dqkv" + at, dtype, dqkv, dqkv_ref, kAttention);
  }
}

TEST_F(CudaOps, AttentionMatchesCpuAcrossTileBoundaries) {
  SCOPED_TRACE(seed());
  CheckAttention(rng(), 2, 77, 3, 64);  // T not a multiple of the 32-row tile
  CheckAttention(rng(), 1, 1, 2, 40);   // one token; hd not a multiple of 32
  CheckAttention(rng(), 1, 130, 2, 128);
}

TEST_F(CudaOps, AttentionLargestHeadDimension) {
  SCOPED_TRACE(seed());
  CheckAttention(rng(), 1, 45, 1, 256);  // the most shared memory the kernels ask for
}

// ---- SwiGLU -------------------------------------------------------------------------------------

TEST_F(CudaOps, SwiGluMatchesCpu) {
  SCOPED_TRACE(seed());
  const Shape shape{300, 170};
  for (DType dtype : kDTypes) {
    const Tensor gate = Representable(Uniform(shape, rng(), -6.0, 6.0), dtype);
    const Tensor up = Representable(Uniform(shape, rng()), dtype);
    Tensor out_ref = Tensor::Empty(shape, DType::kF64);
    ops::SwiGluForward(gate, up, out_ref);
    const Tensor gate_dev = Upload(gate, dtype), up_dev = Upload(up, dtype);
    Tensor out = Poisoned(shape, dtype);
    ops::SwiGluForward(gate_dev, up_dev, out);
    ExpectClose("SwiGluForward", dtype, out, out_ref, kPointwise);

    const Tensor dout = Representable(Uniform(shape, rng()), dtype);
    const Tensor dgate_start = Representable(Uniform(shape, rng()), dtype);
    const Tensor dup_start = Representable(Uniform(shape, rng()), dtype);
    Tensor dgate_ref = CloneHost(dgate_start), dup_ref = CloneHost(dup_start);
    ops::SwiGluBackward(dout, gate, up, dgate_ref, dup_ref);
    Tensor dgate = Upload(dgate_start, dtype), dup = Upload(dup_start, dtype);
    ops::SwiGluBackward(Upload(dout, dtype), gate_dev, up_dev, dgate, dup);
    ExpectClose("SwiGluBackward dgate", dtype, dgate, dgate_ref, kPointwise);
    ExpectClose("SwiGluBackward dup", dtype, dup, dup_ref, kPointwise);
  }
}

// ---- Row softmax --------------------------------------------------------------------------------

TEST_F(CudaOps, RowSoftmaxMatchesCpu) {
  SCOPED_TRACE(seed());
  for (int64_t m : {2, 8, 70}) {  // 70 > 32: a lane handles several columns
    const Shape shape{300, m};
    for (DType dtype : kDTypes) {
      const std::string at = " m=" + std::to_string(m);
      const Tensor x = Representable(Uniform(shape, rng(), -5.0, 5.0), dtype);
      Tensor y_ref = Tensor::Empty(shape, DType::kF64);
      ops::RowSoftmaxForward(x, y_ref);
      Tensor y = Poisoned(shape, dtype);
      ops::RowSoftmaxForward(Upload(x, dtype), y);
      ExpectClose("RowSoftmaxForward" + at, dtype, y, y_ref, kRowReduce);

      const Tensor y_saved = Representable(y_ref, dtype);
      const Tensor dy = Representable(Uniform(shape, rng()), dtype);
      const Tensor dx_start = Representable(Uniform(shape, rng()), dtype);
      Tensor dx_ref = CloneHost(dx_start);
      ops::RowSoftmaxBackward(dy, y_saved, dx_ref);
      Tensor dx = Upload(dx_start, dtype);
      ops::RowSoftmaxBackward(Upload(dy, dtype), Upload(y_saved, dtype), dx);
      ExpectClose("RowSoftmaxBackward" + at, dtype, dx, dx_ref, kRowReduce);
    }
  }
}

// ---- Cross-entropy ------------------------------------------------------------------------------

TEST_F(CudaOps, CrossEntropyMatchesCpuWithIgnoredRows) {
  SCOPED_TRACE(seed());
  for (int64_t vocab : {1000, 5003}) {
    const int64_t n = 64;
    Tensor targets = RandomIndex({n}, rng(), 0, static_cast<int32_t>(vocab));
    for (int64_t t = 0; t < n; t += 7) targets.data<int32_t>()[t] = -1;  // ignored rows
    const Tensor targets_dev = UploadIndex(targets);
    for (DType dtype : kDTypes) {
      const std::string at = " V=" + std::to_string(vocab);
      const Tensor logits = Representable(Uniform({n, vocab}, rng(), -8.0, 8.0), dtype);
      Tensor losses_ref = Tensor::Empty({n}, DType::kF64);
      ops::CrossEntropyForward(logits, targets, losses_ref);
      Tensor losses = Poisoned({n}, kStats);
      ops::CrossEntropyForward(Upload(logits, dtype), targets_dev, losses);
      // Losses are f32 in both modes; from bf16 logits they are exact to f32 reduction error.
      ExpectClose("CrossEntropyForward" + at, DType::kF32, losses, losses_ref, kRowReduce);

      const double grad_scale = 1.0 / 57.0;
      Tensor grad_ref = CloneHost(logits);
      Tensor losses_fb_ref = Tensor::Empty({n}, DType::kF64);
      ops::CrossEntropyForwardBackward(grad_ref, targets, grad_scale, losses_fb_ref);
      Tensor grad = Upload(logits, dtype);
      Tensor losses_fb = Poisoned({n}, kStats);
      ops::CrossEntropyForwardBackward(grad, targets_dev, grad_scale, losses_fb);
      ExpectClose("CrossEntropyForwardBackward losses" + at, DType::kF32, losses_fb, losses_fb_ref,
                  kRowReduce);
      ExpectClose("CrossEntropyForwardBackward dlogits" + at, dtype, grad, grad_ref, kRowReduce);
    }
  }
}

}  // namespace
}  // namespace aoetron::cudatest
