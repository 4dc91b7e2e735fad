// CausalAttentionForward/Backward: forward against a naive f64 reference, backward against
// finite differences, f32 against f64, the causal mask, accumulation, thread independence.
#include "core/ops/attention.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

#include "tests/core/gradcheck.h"

namespace aoetron::optest {
namespace {

struct Dims {
  int64_t batch, seq, heads, head_dim;
  Shape qkv() const { return {batch, seq, 3, heads, head_dim}; }
  Shape out() const { return {batch, seq, heads, head_dim}; }
  Shape lse() const { return {batch, heads, seq}; }
};

// The textbook computation, one query at a time, in f64: S = QKᵀ/sqrt(hd) over keys j ≤ i,
// softmax, weighted sum of V.
void NaiveAttention(const Tensor& qkv, const Dims& dims, Tensor& out, Tensor& lse) {
  const double* x = qkv.data<double>();
  double* o = out.data<double>();
  double* l = lse.data<double>();
  const int64_t T = dims.seq, H = dims.heads, D = dims.head_dim;
  auto at = [&](int64_t b, int64_t t, int part, int64_t h, int64_t c) {
    return x[(((b * T + t) * 3 + part) * H + h) * D + c];
  };
  for (int64_t b = 0; b < dims.batch; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> s(i + 1);
        double max = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j <= i; ++j) {
          double dot = 0.0;
          for (int64_t c = 0; c < D; ++c) dot += at(b, i, 0, h, c) * at(b, j, 1, h, c);
          s[j] = dot / std::sqrt(static_cast<double>(D));
          max = std::max(max, s[j]);
        }
        double sum = 0.0;
        for (int64_t j = 0; j <= i; ++j) sum += std::exp(s[j] - max);
        l[(b * H + h) * T + i] = max + std::log(sum);
        for (int64_t c = 0; c < D; ++c) {
          double acc = 0.0;
          for (int64_t j = 0; j <= i; ++j) acc += std::exp(s[j] - max) / sum * at(b, j, 2, h, c);
          o[((b * T + i) * H + h) * D + c] = acc;
        }
      }
    }
  }
}

// Shapes that exercise the tiling: a sequence shorter than one row block, lengths that are not
// multiples of the row block (4) or the column tile (64 / 32), head dims below, at and above
// one vector, odd ones included.
const Dims kShapes[] = {{1, 1, 1, 2}, {2, 3, 2, 4}, {1, 7, 3, 6}, {2, 9, 1, 16}, {1, 70, 2, 24}};

TEST(CausalAttention, ForwardMatchesNaiveReference) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (const Dims& dims : kShapes) {
    SCOPED_TRACE("T=" + std::to_string(dims.seq) + " hd=" + std::to_string(dims.head_dim));
    // Scale 2: logits of several units, so the softmax is far from uniform.
    const Tensor qkv = Uniform(dims.qkv(), rng, -2.0, 2.0);
    Tensor out = Tensor::Empty(dims.out(), DType::kF64),
           lse = Tensor::Empty(dims.lse(), DType::kF64);
    Tensor ref_out = ZerosLike(out), ref_lse = ZerosLike(lse);
    ops::CausalAttentionForward(qkv, out, lse);
    NaiveAttention(qkv, dims, ref_out, ref_lse);
    // Same math in f64 with a different summation order: agreement to ~1e-15; 1e-12 leaves room
    // for the order and is still far below any indexing or masking error.
    EXPECT_TRUE(NormwiseClose("out", out, ref_out, 1e-12));
    EXPECT_TRUE(NormwiseClose("lse", lse, ref_lse, 1e-12));
  }
}

TEST(CausalAttention, BackwardMatchesFiniteDifferences) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (const Dims& dims : {Dims{1, 1, 1, 2}, Dims{2, 5, 2, 4}, Dims{1, 7, 2, 6}}) {
    SCOPED_TRACE("T=" + std::to_string(dims.seq) + " hd=" + std::to_string(dims.head_dim));
    Tensor qkv = Uniform(dims.qkv(), rng, -1.5, 1.5);
    const Tensor r = Uniform(dims.out(), rng);
    Tensor out = Tensor::Empty(dims.out(), DType::kF64),
           lse = Tensor::Empty(dims.lse(), DType::kF64);
    ops::CausalAttentionForward(qkv, out, lse);
    Tensor dqkv = Tensor::Zeros(dims.qkv(), DType::kF64);
    ops::CausalAttentionBackward(r, qkv, out, lse, dqkv);
    auto forward = [&] {
      Tensor o = Tensor::Empty(dims.out(), DType::kF64), l = Tensor::Empty(dims.lse(), DType::kF64);
      ops::CausalAttentionForward(qkv, o, l);
      return std::vector<Tensor>{o};
    };
    EXPECT_TRUE(CheckGradients(forward, {r}, {{"qkv", qkv, dqkv}}));
  }
}

// A longer sequence than the finite-difference shapes, across several tiles, still f64: the
// backward against a directional finite difference over all of qkv at once.
TEST(CausalAttention, BackwardMatchesDirectionalDerivativeAcrossTiles) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const Dims dims{2, 133, 2, 40};
  Tensor qkv = Uniform(dims.qkv(), rng);
  const Tensor r = Uniform(dims.out(), rng);
  const Tensor direction = Uniform(dims.qkv(), rng);
  Tensor out = Tensor::Empty(dims.out(), DType::kF64), lse = Tensor::Empty(dims.lse(), DType::kF64);
  ops::CausalAttentionForward(qkv, out, lse);
  Tensor dqkv = Tensor::Zeros(dims.qkv(), DType::kF64);
  ops::CausalAttentionBackward(r, qkv, out, lse, dqkv);
  double analytic = 0.0;
  for (int64_t i = 0; i < qkv.numel(); ++i) analytic += At(dqkv, i) * At(direction, i);
  auto loss_at = [&](double eps) {
    Tensor x = Clone(qkv);
    for (int64_t i = 0; i < x.numel(); ++i) x.data<double>()[i] += eps * At(direction, i);
    Tensor o = Tensor::Empty(dims.out(), DType::kF64), l = Tensor::Empty(dims.lse(), DType::kF64);
    ops::CausalAttentionForward(x, o, l);
    double loss = 0.0;
    for (int64_t i = 0; i < o.numel(); ++i) loss += At(o, i) * At(r, i);
    return loss;
  };
  // Here every output moves, so rounding of the ~2·10⁴-term loss (≈ 1e-16·10²) over 2h = 2e-6
  // gives ~1e-8 absolute noise on a derivative of size ~10²: 1e-7 relative is 10× above it.
  const double numeric = (loss_at(kStep) - loss_at(-kStep)) / (2 * kStep);
  EXPECT_NEAR(analytic, numeric, 1e-7 * std::abs(numeric));
}

TEST(CausalAttention, F32MatchesF64) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (const Dims& dims : {Dims{2, 70, 2, 24}, Dims{1, 131, 1, 64}}) {
    const Tensor qkv = Uniform(dims.qkv(), rng, -2.0, 2.0);
    const Tensor dout = Uniform(dims.out(), rng);
    Tensor out = Tensor::Empty(dims.out(), DType::kF64),
           lse = Tensor::Empty(dims.lse(), DType::kF64);
    Tensor dqkv = Tensor::Zeros(dims.qkv(), DType::kF64);
    ops::CausalAttentionForward(qkv, out, lse);
    ops::CausalAttentionBackward(dout, qkv, out, lse, dqkv);

    const Tensor qkv32 = ToF32(qkv), dout32 = ToF32(dout);
    Tensor out32 = Tensor::Empty(dims.out(), DType::kF32),
           lse32 = Tensor::Empty(dims.lse(), DType::kF32);
    Tensor dqkv32 = Tensor::Zeros(dims.qkv(), DType::kF32);
    ops::CausalAttentionForward(qkv32, out32, lse32);
    ops::CausalAttentionBackward(dout32, qkv32, out32, lse32, dqkv32);
    // f32 rounding (6e-8) accumulated over sums of ≤ 131 terms and an exp of logits up to ~30
    // (relative error ~30·6e-8): a few 1e-6 normwise; 2e-5 is the bound, an indexing error is O(1).
    EXPECT_TRUE(NormwiseClose("out", out32, out, 2e-5));
    EXPECT_TRUE(NormwiseClose("lse", lse32, lse, 2e-5));
    EXPECT_TRUE(NormwiseClose("dqkv", dqkv32, dqkv, 2e-5));
  }
}

// Changing the tokens after position p leaves outputs 0..p unchanged, bit for bit, and their
// gradients do not reach the later tokens' q, k or v.
TEST(CausalAttention, CausalMask) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const Dims dims{2, 75, 2, 16};
  const int64_t p = 41;
  const Tensor qkv = ToF32(Uniform(dims.qkv(), rng));
  Tensor changed = Clone(qkv);
  const int64_t token = 3 * dims.heads * dims.head_dim;
  for (int64_t b = 0; b < dims.batch; ++b) {
    for (int64_t t = p + 1; t < dims.seq; ++t) {
      float* x = changed.data<float>() + (b * dims.seq + t) * token;
      for (int64_t c = 0; c < token; ++c) x[c] = 10.0f * x[c] + 1.0f;
    }
  }
  Tensor out_a = Tensor::Empty(dims.out(), DType::kF32),
         lse_a = Tensor::Empty(dims.lse(), DType::kF32);
  Tensor out_b = Tensor::Empty(dims.out(), DType::kF32),
         lse_b = Tensor::Empty(dims.lse(), DType::kF32);
  ops::CausalAttentionForward(qkv, out_a, lse_a);
  ops::CausalAttentionForward(changed, out_b, lse_b);
  for (int64_t b = 0; b < dims.batch; ++b) {
    const int64_t row = dims.heads * dims.head_dim;
    const Tensor ea = out_a.Rows(b, b + 1).Reshape({dims.seq, row}).Rows(0, p + 1);
    const Tensor eb = out_b.Rows(b, b + 1).Reshape({dims.seq, row}).Rows(0, p + 1);
    EXPECT_TRUE(BitwiseEqual("outputs up to p", ea, eb));
    const Tensor la = out_a.Rows(b, b + 1).Reshape({dims.seq, row}).Rows(p + 1, dims.seq);
    const Tensor lb = out_b.Rows(b, b + 1).Reshape({dims.seq, row}).Rows(p + 1, dims.seq);
    EXPECT_FALSE(BitwiseEqual("outputs after p (must change)", la, lb));
  }
  // A gradient on outputs 0..p only: dqkv of tokens after p is exactly zero.
  Tensor dout = Tensor::Zeros(dims.out(), DType::kF32);
  for (int64_t b = 0; b < dims.batch; ++b) {
    for (int64_t t = 0; t <= p; ++t) {
      float* d = dout.data<float>() + (b * dims.seq + t) * dims.heads * dims.head_dim;
      for (int64_t c = 0; c < dims.heads * dims.head_dim; ++c) d[c] = 1.0f + 0.01f * c;
    }
  }
  Tensor dqkv = Tensor::Zeros(dims.qkv(), DType::kF32);
  ops::CausalAttentionBackward(dout, qkv, out_a, lse_a, dqkv);
  for (int64_t b = 0; b < dims.batch; ++b) {
    for (int64_t t = 0; t < dims.seq; ++t) {
      const float* d = dqkv.data<float>() + (b * dims.seq + t) * token;
      bool any = false;
      for (int64_t c = 0; c < token; ++c) any |= d[c] != 0.0f;
      EXPECT_EQ(any, t <= p) << "batch " << b << " token " << t;
    }
  }
}

TEST(CausalAttention, BackwardAccumulates) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const Dims dims{2, 11, 2, 8};
  const Tensor qkv = Uniform(dims.qkv(), rng), dout = Uniform(dims.out(), rng);
  Tensor out = Tensor::Empty(dims.out(), DType::kF64), lse = Tensor::Empty(dims.lse(), DType::kF64);
  ops::CausalAttentionForward(qkv, out, lse);
  Tensor dqkv = Tensor::Empty(dims.qkv(), DType::kF64);
  ExpectAccumulates([&] { ops::CausalAttentionBackward(dout, qkv, out, lse, dqkv); }, {dqkv}, rng);
}

TEST(CausalAttention, ThreadCountIndependent) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const Dims dims{3, 67, 2, 32};
  const Tensor qkv = ToF32(Uniform(dims.qkv(), rng)), dout = ToF32(Uniform(dims.out(), rng));
  std::vector<Tensor> results;
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    Tensor out = Tensor::Empty(dims.out(), DType::kF32),
           lse = Tensor::Empty(dims.lse(), DType::kF32);
    Tensor dqkv = Tensor::Zeros(dims.qkv(), DType::kF32);
    ops::CausalAttentionForward(qkv, out, lse);
    ops::CausalAttentionBackward(dout, qkv, out, lse, dqkv);
    results.push_back(out);
    results.push_back(dqkv);
  }
  omp_set_num_threads(saved);
  EXPECT_TRUE(BitwiseEqual("out, 1 vs 2 threads", results[0], results[2]));
  EXPECT_TRUE(BitwiseEqual("dqkv, 1 vs 2 threads", results[1], results[3]));
}

TEST(CausalAttentionDeathTest, RejectsMismatchedShapes) {
  Tensor qkv = Tensor::Zeros({1, 4, 3, 2, 8}, DType::kF32);
  Tensor out = Tensor::Zeros({1, 4, 2, 7}, DType::kF32),
         lse = Tensor::Zeros({1, 2, 4}, DType::kF32);
  EXPECT_DEATH(ops::CausalAttentionForward(qkv, out, lse), "CausalAttentionForward: out");
  Tensor cuda = Tensor::Wrap(qkv.raw_data(), qkv.shape(), DType::kF32, Device::Cuda(0));
  Tensor cuda_out = Tensor::Wrap(out.raw_data(), {1, 4, 2, 8}, DType::kF32, Device::Cuda(0));
  Tensor cuda_lse = Tensor::Wrap(lse.raw_data(), lse.shape(), DType::kF32, Device::Cuda(0));
  if (!CudaBackendBuilt()) {  // with the backend, tests/cuda covers CUDA tensors
    EXPECT_DEATH(ops::CausalAttentionForward(cuda, cuda_out, cuda_lse),
                 "no CUDA kernel for CausalAttentionForward in this build");
  }
}

// Prints the time of forward + backward at the bench shape (f32, B=8, T=256, H=4, hd=64), best of
// 10 after a warm-up. Informational: the number goes to the log, nothing is asserted on it.
TEST(CausalAttention, TimingAtBenchShape) {
  const Dims dims{8, 256, 4, 64};
  std::mt19937_64 rng(1);
  const Tensor qkv = ToF32(Uniform(dims.qkv(), rng)), dout = ToF32(Uniform(dims.out(), rng));
  Tensor out = Tensor::Empty(dims.out(), DType::kF32), lse = Tensor::Empty(dims.lse(), DType::kF32);
  Tensor dqkv = Tensor::Zeros(dims.qkv(), DType::kF32);
  double best_forward = 1e9, best_backward = 1e9;
  for (int rep = 0; rep < 11; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    ops::CausalAttentionForward(qkv, out, lse);
    const auto t1 = std::chrono::steady_clock::now();
    ops::CausalAttentionBackward(dout, qkv, out, lse, dqkv);
    const auto t2 = std::chrono::steady_clock::now();
    if (rep == 0) continue;
    best_forward = std::min(best_forward, std::chrono::duration<double>(t1 - t0).count());
    best_backward = std::min(best_backward, std::chrono::duration<double>(t2 - t1).count());
  }
  std::printf("attention B=8 T=256 H=4 hd=64 f32, %d threads: forward %.2f ms, backward %.2f ms\n",
              omp_get_max_threads(), best_forward * 1e3, best_backward * 1e3);
}

}  // namespace
}  // namespace aoetron::optest
