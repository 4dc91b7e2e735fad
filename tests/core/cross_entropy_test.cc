// CrossEntropyForward / ForwardBackward: losses against the formula (stable for large logits),
// gradient against finite differences of grad_scale · Σ losses, ignored targets, f32 against f64
// at a GPT-2-sized vocabulary, thread independence, target checks.
#include "core/ops/cross_entropy.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>

#include "tests/core/gradcheck.h"

namespace aoetron::optest {
namespace {

Tensor Targets(const std::vector<int32_t>& values) {
  Tensor t = Tensor::Empty({static_cast<int64_t>(values.size())}, DType::kI32);
  for (size_t i = 0; i < values.size(); ++i) t.data<int32_t>()[i] = values[i];
  return t;
}

double ReferenceLoss(const Tensor& logits, int64_t row, int64_t vocab, int32_t target) {
  if (target < 0) return 0.0;
  long double max = At(logits, row * vocab);
  for (int64_t j = 0; j < vocab; ++j) max = std::max<long double>(max, At(logits, row * vocab + j));
  long double sum = 0.0L;
  for (int64_t j = 0; j < vocab; ++j) sum += std::exp(At(logits, row * vocab + j) - max);
  return static_cast<double>(max + std::log(sum) - At(logits, row * vocab + target));
}

TEST(CrossEntropy, ForwardMatchesFormula) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const int64_t n = 5, vocab = 3000;  // several 1024-wide summation blocks
  Tensor logits = Uniform({n, vocab}, rng, -5.0, 5.0);
  // Row 3 is shifted by 1000: without the max subtraction e^1000 would overflow.
  for (int64_t j = 0; j < vocab; ++j) logits.data<double>()[3 * vocab + j] += 1000.0;
  const Tensor targets = Targets({0, 2999, -1, 17, 1500});
  for (bool f32 : {false, true}) {
    const Tensor x = f32 ? ToF32(logits) : logits;
    Tensor losses = Tensor::Empty({n}, x.dtype());
    ops::CrossEntropyForward(x, targets, losses);
    for (int64_t t = 0; t < n; ++t) {
      const double expected = ReferenceLoss(x, t, vocab, targets.data<int32_t>()[t]);
      // f64: ~1e-15 relative to the terms (up to 1000 in row 3). f32: the loss is a difference of
      // values of size ≤ 1000 rounded to f32 (6e-8 · 1000) plus the sum's error.
      const double tol = f32 ? 2e-4 : 1e-12;
      EXPECT_NEAR(At(losses, t), expected, tol) << (f32 ? "f32" : "f64") << " row " << t;
    }
    EXPECT_EQ(At(losses, 2), 0.0);  // ignored
  }
}

TEST(CrossEntropy, GradientMatchesFiniteDifferences) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const int64_t n = 4, vocab = 9;
  Tensor logits = Uniform({n, vocab}, rng, -3.0, 3.0);
  const Tensor targets = Targets({4, -1, 0, 8});
  const float grad_scale = 0.37f;
  Tensor dlogits = Clone(logits);
  Tensor losses = Tensor::Empty({n}, DType::kF64);
  ops::CrossEntropyForwardBackward(dlogits, targets, grad_scale, losses);
  // The fused path's losses are the forward's.
  Tensor forward_losses = Tensor::Empty({n}, DType::kF64);
  ops::CrossEntropyForward(logits, targets, forward_losses);
  EXPECT_TRUE(ElementwiseClose("losses", losses, forward_losses, 1e-15));
  // L = grad_scale · Σ_t losses[t]: the projection is grad_scale on every row.
  Tensor r = Tensor::Empty({n}, DType::kF64);
  for (int64_t t = 0; t < n; ++t) r.data<double>()[t] = grad_scale;
  auto forward = [&] {
    Tensor l = Tensor::Empty({n}, DType::kF64);
    ops::CrossEntropyForward(logits, targets, l);
    return std::vector<Tensor>{l};
  };
  EXPECT_TRUE(CheckGradients(forward, {r}, {{"logits", logits, dlogits}}));
  // Ignored row: exactly zero gradient.
  for (int64_t j = 0; j < vocab; ++j) EXPECT_EQ(At(dlogits, vocab + j), 0.0);
}

TEST(CrossEntropy, F32MatchesF64AtGpt2Vocabulary) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const int64_t n = 6, vocab = 50257;
  const Tensor logits = Uniform({n, vocab}, rng, -8.0, 8.0);
  std::uniform_int_distribution<int32_t> pick(0, vocab - 1);
  const Tensor targets = Targets({pick(rng), pick(rng), -1, pick(rng), pick(rng), vocab - 1});
  const float grad_scale = 1.0f / n;
  Tensor d64 = Clone(logits), l64 = Tensor::Empty({n}, DType::kF64);
  ops::CrossEntropyForwardBackward(d64, targets, grad_scale, l64);
  Tensor d32 = ToF32(logits), l32 = Tensor::Empty({n}, DType::kF32);
  ops::CrossEntropyForwardBackward(d32, targets, grad_scale, l32);
  // Loss ≈ 10: f32 rounding of max, log Z and x_target (|·| ≤ 8 + log 50257 ≈ 19) ≈ 19·6e-8,
  // plus Z summed over 50k terms in f32 blocks (relative ≲ 1024·6e-8 worst case, ~1e-6 in
  // practice): 1e-5 normwise.
  EXPECT_TRUE(NormwiseClose("losses", l32, l64, 1e-5));
  // Gradients are grad_scale·(p − onehot): the error is relative to p's size (exp of f32 inputs
  // with |x| ≤ 8: 8·6e-8 relative, plus 1/Z's error): 1e-5 normwise.
  EXPECT_TRUE(NormwiseClose("dlogits", d32, d64, 1e-5));
}

TEST(CrossEntropy, ThreadCountIndependent) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const Tensor logits = ToF32(Uniform({33, 5000}, rng, -4.0, 4.0));
  std::vector<int32_t> t(33);
  for (int i = 0; i < 33; ++i) t[i] = (i * 151) % 5000;
  const Tensor targets = Targets(t);
  std::vector<Tensor> results;
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    Tensor d = Clone(logits), l = Tensor::Empty({33}, DType::kF32);
    ops::CrossEntropyForwardBackward(d, targets, 0.5f, l);
    results.push_back(d);
    results.push_back(l);
  }
  omp_set_num_threads(saved);
  EXPECT_TRUE(BitwiseEqual("dlogits", results[0], results[2]));
  EXPECT_TRUE(BitwiseEqual("losses", results[1], results[3]));
}

TEST(CrossEntropyDeathTest, RejectsTargetOutsideVocabulary) {
  Tensor logits = Tensor::Zeros({2, 5}, DType::kF32), losses = Tensor::Zeros({2}, DType::kF32);
  EXPECT_DEATH(ops::CrossEntropyForward(logits, Targets({0, 5}), losses),
               "CrossEntropyForward: targets\\[1\\] = 5 is outside");
  Tensor wrong = Tensor::Zeros({3}, DType::kF32);
  EXPECT_DEATH(ops::CrossEntropyForwardBackward(logits, Targets({0, 1}), 1.0f, wrong),
               "CrossEntropyForwardBackward: losses must have shape \\[2\\]");
}

}  // namespace
}  // namespace aoetron::optest
