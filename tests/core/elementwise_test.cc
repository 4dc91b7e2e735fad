// Fill, Copy, AddInto, Axpy, Scale, SumSquares: results against plain loops, dtype coverage,
// and SumSquares' thread-count independence.
#include "core/ops/elementwise.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>

#include "tests/core/gradcheck.h"

namespace aoetron::optest {
namespace {

// Sizes below and above the kernels' parallel threshold (2^15) and SumSquares' chunk (2^14),
// with ragged ends.
const int64_t kSizes[] = {0, 1, 17, 16385, 100003};

TEST(Elementwise, FillEveryDType) {
  for (int64_t n : kSizes) {
    Tensor f32 = Tensor::Empty({n}, DType::kF32), f64 = Tensor::Empty({n}, DType::kF64);
    Tensor i32 = Tensor::Empty({n}, DType::kI32), i64 = Tensor::Empty({n}, DType::kI64);
    Tensor u16 = Tensor::Empty({n}, DType::kU16), bf16 = Tensor::Empty({n}, DType::kBF16);
    ops::Fill(f32, 0.1);
    ops::Fill(f64, 0.1);
    ops::Fill(i32, -7);
    ops::Fill(i64, 1e12);
    ops::Fill(u16, 65535);
    ops::Fill(bf16, 1.0 + 3.0 / 256);  // between two bf16 values: rounds to nearest even
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(f32.data<float>()[i], 0.1f);
      ASSERT_EQ(f64.data<double>()[i], 0.1);
      ASSERT_EQ(i32.data<int32_t>()[i], -7);
      ASSERT_EQ(i64.data<int64_t>()[i], int64_t{1000000000000});
      ASSERT_EQ(u16.data<uint16_t>()[i], 65535);
      // bf16 keeps 7 mantissa bits: 1 + 3/256 lies halfway between 1 + 1/128 (0x3F81, odd)
      // and 1 + 2/128 (0x3F82, even); the tie goes to the even one.
      ASSERT_EQ(bf16.data<BFloat16>()[i].bits, 0x3F82);
    }
  }
}

TEST(Elementwise, CopyAddAxpyScale) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (int64_t n : kSizes) {
    for (DType dtype : {DType::kF32, DType::kF64}) {
      auto make = [&] {
        Tensor t = Uniform({n}, rng);
        return dtype == DType::kF32 ? ToF32(t) : t;
      };
      const Tensor a = make(), b = make();
      Tensor c = make();
      ops::Copy(a, c);
      ASSERT_TRUE(BitwiseEqual("Copy", c, a));
      Tensor sum = Clone(b);
      ops::AddInto(a, sum);
      Tensor axpy = Clone(b);
      ops::Axpy(-2.5, a, axpy);
      Tensor scaled = Clone(a);
      ops::Scale(scaled, 0.75);
      for (int64_t i = 0; i < n; ++i) {
        // Each result is one rounded operation (or one FMA) of the inputs: exact up to 1 ulp.
        const double tol = dtype == DType::kF32 ? 1.2e-7 : 2.3e-16;
        const double ai = At(a, i), bi = At(b, i);
        ASSERT_NEAR(At(sum, i), ai + bi, tol * std::abs(ai + bi) + 1e-300);
        ASSERT_NEAR(At(axpy, i), bi - 2.5 * ai, tol * 4 * (std::abs(bi) + 2.5 * std::abs(ai)));
        ASSERT_NEAR(At(scaled, i), 0.75 * ai, tol * std::abs(ai));
      }
    }
  }
}

TEST(Elementwise, SumSquaresMatchesLongDoubleSum) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (int64_t n : kSizes) {
    const Tensor x64 = Uniform({n}, rng, -3.0, 3.0);
    const Tensor x32 = ToF32(x64);
    for (const Tensor& x : {x64, x32}) {
      long double expected = 0.0L;
      for (int64_t i = 0; i < n; ++i) expected += static_cast<long double>(At(x, i)) * At(x, i);
      // Double accumulation over ≤ 1e5 positive terms: relative error ≲ n·ε ≈ 2e-11 worst case.
      EXPECT_NEAR(ops::SumSquares(x), static_cast<double>(expected),
                  1e-10 * static_cast<double>(expected))
          << "n = " << n << " " << x.DebugString();
    }
  }
}

// Chunk partials combined in a fixed order: 1 and 2 threads give the same bits.
TEST(Elementwise, SumSquaresThreadCountIndependent) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const Tensor x = ToF32(Uniform({1000003}, rng, -5.0, 5.0));
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one = ops::SumSquares(x);
  omp_set_num_threads(2);
  const double two = ops::SumSquares(x);
  omp_set_num_threads(saved);
  EXPECT_EQ(std::memcmp(&one, &two, sizeof(double)), 0) << one << " vs " << two;
}

// The summation order is a function of the indices alone: the same values at every alignment
// (views starting 0–15 floats into a buffer) give the same bits. The gradient norm sums the same
// pieces from the flat gradients and from ZeRO-1's shard buffer.
TEST(Elementwise, SumSquaresIndependentOfAlignment) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (int64_t n : {5, 37, 16384 + 29}) {
    const Tensor x = ToF32(Uniform({n}, rng, -5.0, 5.0));
    const double reference = ops::SumSquares(x);
    for (int64_t offset = 1; offset < 16; ++offset) {
      Tensor buffer = Tensor::Zeros({n + offset}, DType::kF32);
      Tensor view = buffer.Rows(offset, offset + n);
      ops::Copy(x, view);
      const double moved = ops::SumSquares(view);
      EXPECT_EQ(std::memcmp(&moved, &reference, sizeof(double)), 0)
          << "n " << n << ", offset " << offset << ": " << moved << " vs " << reference;
    }
  }
}

TEST(ElementwiseDeathTest, RejectsMismatches) {
  Tensor a = Tensor::Zeros({4}, DType::kF32), b = Tensor::Zeros({5}, DType::kF32);
  Tensor c = Tensor::Zeros({4}, DType::kF64);
  EXPECT_DEATH(ops::AddInto(a, b), "AddInto: src and dst differ in element count");
  EXPECT_DEATH(ops::Copy(a, c), "Copy: src and dst differ in dtype");
  Tensor i = Tensor::Zeros({4}, DType::kI32);
  EXPECT_DEATH(ops::Scale(i, 2.0), "Scale: t must be f32, bf16 or f64");
  Tensor cuda = Tensor::Wrap(a.raw_data(), {4}, DType::kF32, Device::Cuda(0));
  if (!CudaBackendBuilt()) {  // with the backend, tests/cuda covers CUDA tensors
    EXPECT_DEATH(ops::Fill(cuda, 1.0), "no CUDA kernel for Fill in this build");
  }
  EXPECT_DEATH(ops::AddInto(a, cuda), "AddInto: operands on different devices");
}

}  // namespace
}  // namespace aoetron::optest
