// Mixed precision at the op level (core/ops/f32_staging.h, core/dtype.h):
//   - ToBFloat16 / ops::Convert round to nearest even, keep NaN a NaN, overflow to infinity;
//   - every op given bf16 operands computes what its f32 kernel computes on the widened
//     operands, each output rounded once: bf16 storage, f32 arithmetic. Compared bit for bit on
//     fresh random inputs against the f32 op on exactly widened copies;
//   - the operands mixed precision keeps in f32 beside bf16 activations (weight gradients, a
//     GEMM's C, routing norms and gate weights, statistics) accumulate in f32: an increment far
//     below a bf16 spacing is kept;
//   - a bf16 all-reduce (the rank-order reduction) sums in f32 and rounds once.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/ops/attention.h"
#include "core/ops/cross_entropy.h"
#include "core/ops/elementwise.h"
#include "core/ops/embedding.h"
#include "core/ops/expert_permute.h"
#include "core/ops/gemm.h"
#include "core/ops/grouped_l2_norm.h"
#include "core/ops/rmsnorm.h"
#include "core/ops/swiglu.h"
#include "parallel/rank_order_reduction.h"

namespace aoetron {
namespace {

std::mt19937_64& Rng() {
  static std::mt19937_64 rng(std::random_device{}());
  return rng;
}

// f32 values that are exactly representable in bf16 (so widening loses nothing to compare).
Tensor RandomBf16Exact(Shape shape, float scale = 1.0f) {
  Tensor t = Tensor::Empty(std::move(shape), DType::kF32);
  std::normal_distribution<float> normal(0.0f, scale);
  float* v = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = ToFloat(ToBFloat16(normal(Rng())));
  return t;
}

Tensor ToBf16(const Tensor& f32) {
  Tensor out = Tensor::Empty(f32.shape(), DType::kBF16);
  ops::Convert(f32, out);
  return out;
}

Tensor Copy(const Tensor& t) {
  Tensor out = Tensor::Empty(t.shape(), t.dtype());
  ops::Copy(t, out);
  return out;
}

Tensor ToF32(const Tensor& t) {
  Tensor out = Tensor::Empty(t.shape(), DType::kF32);
  ops::Convert(t, out);
  return out;
}

// `bf16` holds exactly the f32 result `f32` rounded to nearest even, element for element.
void ExpectRoundedFrom(const Tensor& bf16, const Tensor& f32, const char* what) {
  ASSERT_EQ(bf16.dtype(), DType::kBF16) << what;
  ASSERT_EQ(bf16.numel(), f32.numel()) << what;
  const BFloat16* b = bf16.data<BFloat16>();
  const float* f = f32.data<float>();
  for (int64_t i = 0; i < f32.numel(); ++i) {
    ASSERT_EQ(b[i].bits, ToBFloat16(f[i]).bits) << what << " element " << i << ": f32 " << f[i];
  }
}

void ExpectBitwise(const Tensor& a, const Tensor& b, const char* what) {
  ASSERT_EQ(a.nbytes(), b.nbytes()) << what;
  EXPECT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()), 0) << what;
}

TEST(Bf16Conversion, RoundsToNearestEvenAndKeepsSpecials) {
  // 1 + 2⁻⁸ lies halfway between 1 and 1 + 2⁻⁷: ties go to the even significand (1).
  EXPECT_EQ(ToFloat(ToBFloat16(1.0f + 0x1p-8f)), 1.0f);
  // 1 + 3·2⁻⁸ lies halfway between 1 + 2⁻⁷ (odd) and 1 + 2·2⁻⁷ (even): up.
  EXPECT_EQ(ToFloat(ToBFloat16(1.0f + 3 * 0x1p-8f)), 1.0f + 2 * 0x1p-7f);
  // Just above a tie rounds up, just below rounds down.
  EXPECT_EQ(ToFloat(ToBFloat16(1.0f + 0x1p-8f + 0x1p-20f)), 1.0f + 0x1p-7f);
  EXPECT_EQ(ToFloat(ToBFloat16(1.0f + 0x1p-8f - 0x1p-20f)), 1.0f);
  EXPECT_TRUE(std::isnan(ToFloat(ToBFloat16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isnan(ToFloat(ToBFloat16(std::numeric_limits<float>::signaling_NaN()))));
  EXPECT_EQ(ToFloat(ToBFloat16(std::numeric_limits<float>::infinity())),
            std::numeric_limits<float>::infinity());
  EXPECT_EQ(ToFloat(ToBFloat16(std::numeric_limits<float>::max())),
            std::numeric_limits<float>::infinity());
  EXPECT_EQ(ToFloat(ToBFloat16(-0.0f)), -0.0f);
  EXPECT_TRUE(std::signbit(ToFloat(ToBFloat16(-0.0f))));

  // ops::Convert: the same rounding; widening is exact, so a round trip is the identity.
  const Tensor x = RandomBf16Exact({1000}, 10.0f);
  Tensor noisy = Tensor::Empty({1000}, DType::kF32);
  std::uniform_real_distribution<float> jitter(-1.0f, 1.0f);
  for (int64_t i = 0; i < 1000; ++i) {
    noisy.data<float>()[i] = x.data<float>()[i] * (1.0f + 0x1p-9f * jitter(Rng()));
  }
  ExpectRoundedFrom(ToBf16(noisy), noisy, "Convert f32 → bf16");
  ExpectBitwise(ToF32(ToBf16(x)), x, "bf16 round trip");
}

TEST(Bf16Ops, GemmIsTheF32GemmOfTheWidenedOperandsRoundedOnce) {
  const Tensor a = RandomBf16Exact({13, 29}), b = RandomBf16Exact({29, 17});
  Tensor expected = Tensor::Empty({13, 17}, DType::kF32);
  ops::Gemm(a, false, b, false, expected);
  Tensor c = Tensor::Empty({13, 17}, DType::kBF16);
  ops::Gemm(ToBf16(a), false, ToBf16(b), false, c);
  ExpectRoundedFrom(c, expected, "Gemm bf16 → bf16");
  // f32 C beside bf16 operands (weight gradients, routing scores): no rounding at all, and
  // beta = 1 accumulates in f32.
  Tensor c32 = RandomBf16Exact({13, 17});
  Tensor expected_acc = Copy(c32);
  ops::Gemm(a, false, b, false, expected_acc, 1.0f, 1.0f);
  ops::Gemm(ToBf16(a), false, ToBf16(b), false, c32, 1.0f, 1.0f);
  ExpectBitwise(c32, expected_acc, "Gemm bf16 → f32 accumulating");
}

TEST(Bf16Ops, RmsNormKeepsRstdAndTheWeightGradientInF32) {
  const int64_t n = 7, d = 40;
  const Tensor x = RandomBf16Exact({n, d}), w = RandomBf16Exact({d}), dy = RandomBf16Exact({n, d});
  Tensor y32 = Tensor::Empty({n, d}, DType::kF32), rstd32 = Tensor::Empty({n}, DType::kF32);
  ops::RmsNormForward(x, w, 1e-5f, y32, rstd32);
  Tensor y = Tensor::Empty({n, d}, DType::kBF16), rstd = Tensor::Empty({n}, DType::kF32);
  ops::RmsNormForward(ToBf16(x), ToBf16(w), 1e-5f, y, rstd);
  ExpectRoundedFrom(y, y32, "RmsNorm y");
  ExpectBitwise(rstd, rstd32, "RmsNorm rstd (f32)");

  // dweight starts at 1: the f32 gradient keeps increments far below bf16's spacing at 1 (2⁻⁷).
  Tensor dx32 = RandomBf16Exact({n, d}), dw32 = Tensor::Empty({d}, DType::kF32);
  ops::Fill(dw32, 1.0);
  Tensor dx = ToBf16(dx32), dw = Tensor::Empty({d}, DType::kF32);
  ops::Fill(dw, 1.0);
  ops::RmsNormBackward(dy, x, w, rstd32, dx32, dw32);
  ops::RmsNormBackward(ToBf16(dy), ToBf16(x), ToBf16(w), rstd, dx, dw);
  ExpectRoundedFrom(dx, dx32, "RmsNorm dx (accumulated, rounded once)");
  ExpectBitwise(dw, dw32, "RmsNorm dweight (f32)");
}

TEST(Bf16Ops, AttentionSwiGluAndCrossEntropyRoundOnlyTheirOutputs) {
  const int64_t batch = 2, seq = 9, heads = 2, hd = 8;
  const Tensor qkv = RandomBf16Exact({batch, seq, 3, heads, hd});
  Tensor out32 = Tensor::Empty({batch, seq, heads, hd}, DType::kF32);
  Tensor lse32 = Tensor::Empty({batch, heads, seq}, DType::kF32);
  ops::CausalAttentionForward(qkv, out32, lse32);
  Tensor out = Tensor::Empty(out32.shape(), DType::kBF16),
         lse = Tensor::Empty(lse32.shape(), DType::kF32);
  ops::CausalAttentionForward(ToBf16(qkv), out, lse);
  ExpectRoundedFrom(out, out32, "attention out");
  ExpectBitwise(lse, lse32, "attention lse (f32)");

  const Tensor gate = RandomBf16Exact({5, 12}), up = RandomBf16Exact({5, 12});
  Tensor h32 = Tensor::Empty({5, 12}, DType::kF32), h = Tensor::Empty({5, 12}, DType::kBF16);
  ops::SwiGluForward(gate, up, h32);
  ops::SwiGluForward(ToBf16(gate), ToBf16(up), h);
  ExpectRoundedFrom(h, h32, "SwiGLU");

  const int64_t rows = 6, vocab = 33;
  const Tensor logits = RandomBf16Exact({rows, vocab}, 3.0f);
  Tensor targets = Tensor::Empty({rows}, DType::kI32);
  for (int64_t r = 0; r < rows; ++r) targets.data<int32_t>()[r] = r == 2 ? -1 : (r * 7) % vocab;
  Tensor grads32 = Copy(logits), losses32 = Tensor::Empty({rows}, DType::kF32);
  ops::CrossEntropyForwardBackward(grads32, targets, 0.25, losses32);
  Tensor grads = ToBf16(logits), losses = Tensor::Empty({rows}, DType::kF32);
  ops::CrossEntropyForwardBackward(grads, targets, 0.25, losses);
  ExpectRoundedFrom(grads, grads32, "cross-entropy dlogits");
  ExpectBitwise(losses, losses32, "cross-entropy losses (f32)");
}

TEST(Bf16Ops, RoutingKeepsNormsGateWeightsAndTheEmbeddingGradientInF32) {
  const int64_t tokens = 6, experts = 4, r = 5, k = 2, d = 8;
  const Tensor c = RandomBf16Exact({tokens, experts * r});
  Tensor norms32 = Tensor::Empty({tokens, experts}, DType::kF32);
  ops::GroupedL2Norm(c, r, norms32);
  Tensor norms = Tensor::Empty({tokens, experts}, DType::kF32);
  ops::GroupedL2Norm(ToBf16(c), r, norms);
  ExpectBitwise(norms, norms32, "AoE norms (f32 from bf16 C)");

  // CombineRows with f32 gate weights: y bf16 = round(Σ_k w · out).
  Tensor position = Tensor::Empty({tokens, k}, DType::kI32);
  for (int64_t p = 0; p < tokens * k; ++p) position.data<int32_t>()[p] = (p * 5) % (tokens * k);
  const Tensor expert_out = RandomBf16Exact({tokens * k, d}),
               weights = RandomBf16Exact({tokens, k});
  Tensor y32 = Tensor::Empty({tokens, d}, DType::kF32),
         y = Tensor::Empty({tokens, d}, DType::kBF16);
  ops::CombineRows(expert_out, position, weights, y32);
  ops::CombineRows(ToBf16(expert_out), position, weights, y);
  ExpectRoundedFrom(y, y32, "CombineRows");
  const Tensor dy = RandomBf16Exact({tokens, d});
  Tensor d_out32 = Tensor::Zeros({tokens * k, d}, DType::kF32);
  Tensor dw32 = Tensor::Zeros({tokens, k}, DType::kF32);
  ops::CombineRowsBackward(dy, expert_out, position, weights, d_out32, dw32);
  Tensor d_out = Tensor::Zeros({tokens * k, d}, DType::kBF16);
  Tensor dw = Tensor::Zeros({tokens, k}, DType::kF32);
  ops::CombineRowsBackward(ToBf16(dy), ToBf16(expert_out), position, weights, d_out, dw);
  ExpectRoundedFrom(d_out, d_out32, "CombineRowsBackward d_expert_out");
  ExpectBitwise(dw, dw32, "CombineRowsBackward dweights (f32)");

  // The embedding's f32 gradient table takes bf16 rows, every id's rows summed in f32.
  Tensor ids = Tensor::Empty({tokens}, DType::kI32);
  for (int64_t t = 0; t < tokens; ++t) ids.data<int32_t>()[t] = t % 3;
  const Tensor dout = RandomBf16Exact({tokens, d}, 1e-3f);
  Tensor table32 = Tensor::Empty({3, d}, DType::kF32);
  ops::Fill(table32, 1.0);
  Tensor table = Copy(table32);
  ops::EmbeddingBackward(ids, dout, table32);
  ops::EmbeddingBackward(ids, ToBf16(dout), table);
  ExpectBitwise(table, table32, "embedding dtable (f32)");
  // The increments (~1e-3) are below half of bf16's spacing at 1 (2⁻⁸): a bf16 table would
  // have dropped some of them; the f32 one moved.
  int moved = 0;
  for (int64_t i = 0; i < table.numel(); ++i) moved += table.data<float>()[i] != 1.0f;
  EXPECT_GT(moved, 0);
}

TEST(Bf16Reduction, SumsInF32AndRoundsOnce) {
  // A bf16 running sum would round 1 + 2⁻⁹ back to 1 at every rank and end at 1; the f32 sum
  // is 1 + 3·2⁻⁹, which rounds once, up to 1 + 2⁻⁷.
  const BFloat16 one = ToBFloat16(1.0f), small = ToBFloat16(0x1p-9f);
  BFloat16 out;
  const BFloat16 four[4] = {one, small, small, small};
  const void* four_contributions[4] = {&four[0], &four[1], &four[2], &four[3]};
  parallel::ReduceInRankOrder(parallel::ReduceOp::kSum, DType::kBF16, four_contributions, &out, 1);
  EXPECT_EQ(ToFloat(out), 1.0f + 0x1p-7f);
  EXPECT_TRUE(parallel::IsReducible(DType::kBF16));
}

}  // namespace
}  // namespace aoetron
