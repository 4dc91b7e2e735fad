// The CUDA runtime pieces: size classes (no GPU needed), the caching allocator's reuse and
// statistics, host/device copies, the elementwise ops, AdamW, deferred device errors, and GEMM
// through cuBLASLt against the CPU's f64 GEMM.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <tuple>

#include "core/cuda/caching_allocator.h"
#include "core/device_transfer.h"
#include "core/ops/elementwise.h"
#include "core/ops/embedding.h"
#include "core/ops/gemm.h"
#include "core/optim/adamw.h"
#include "tests/cuda/cuda_test_util.h"

namespace aoetron::cudatest {
namespace {

using cuda::CachingDeviceAllocator;

// ---- Without a GPU
// -------------------------------------------------------------------------------

TEST(CudaAllocatorSizeClass, RoundsToDocumentedClasses) {
  EXPECT_EQ(CachingDeviceAllocator::SizeClass(0), 512u);
  EXPECT_EQ(CachingDeviceAllocator::SizeClass(1), 512u);
  EXPECT_EQ(CachingDeviceAllocator::SizeClass(512), 512u);
  EXPECT_EQ(CachingDeviceAllocator::SizeClass(513), 1024u);
  EXPECT_EQ(CachingDeviceAllocator::SizeClass(size_t{1} << 20), size_t{1} << 20);
  EXPECT_EQ(CachingDeviceAllocator::SizeClass((size_t{1} << 20) + 1), size_t{2} << 20);
  EXPECT_EQ(CachingDeviceAllocator::SizeClass((size_t{3} << 20) - 7), size_t{4} << 20);
}

TEST(CudaBackend, ReportsWhetherAGpuIsVisible) {
  EXPECT_TRUE(CudaBackendBuilt());
  if (CudaDeviceCount() == 0) {
    EXPECT_FALSE(NoCudaDeviceReason().empty());
  } else {
    EXPECT_TRUE(NoCudaDeviceReason().empty());
  }
}

// ---- Allocator and copies
// -------------------------------------------------------------------------

class CudaRuntime : public CudaTest {};

TEST_F(CudaRuntime, AllocatorReusesFreedBlocksOfTheSameClass) {
  CachingDeviceAllocator& allocator = CachingDeviceAllocator::Instance();
  void* first = allocator.Allocate(1000, 0);
  allocator.Free(first);
  const cuda::AllocatorStats before = allocator.Stats(0);
  void* second = allocator.Allocate(900, 0);  // same 1024-byte class
  const cuda::AllocatorStats after = allocator.Stats(0);
  EXPECT_EQ(second, first);
  EXPECT_EQ(after.cache_hits, before.cache_hits + 1);
  EXPECT_EQ(after.device_mallocs, before.device_mallocs);
  EXPECT_EQ(after.bytes_in_use, before.bytes_in_use + 1024);
  allocator.Free(second);
}

// Large blocks come from segments: a freed 64 MiB block serves two 30 MiB requests (split)
// without a cudaMalloc, and once both are freed a 64 MiB request is served again (merged).
TEST_F(CudaRuntime, AllocatorSplitsAndMergesLargeBlocks) {
  CachingDeviceAllocator& allocator = CachingDeviceAllocator::Instance();
  constexpr size_t kMiB = size_t{1} << 20;
  void* big = allocator.Allocate(64 * kMiB, 0);
  allocator.Free(big);
  const cuda::AllocatorStats before = allocator.Stats(0);
  void* a = allocator.Allocate(30 * kMiB, 0);
  void* b = allocator.Allocate(30 * kMiB, 0);
  EXPECT_EQ(allocator.Stats(0).device_mallocs, before.device_mallocs);
  EXPECT_EQ(a, big);
  EXPECT_EQ(static_cast<char*>(b), static_cast<char*>(big) + 30 * kMiB);
  allocator.Free(a);
  allocator.Free(b);
  void* again = allocator.Allocate(64 * kMiB, 0);
  EXPECT_EQ(again, big);
  EXPECT_EQ(allocator.Stats(0).device_mallocs, before.device_mallocs);
  allocator.Free(again);
}

// A tensor on cuda:1 is allocated on GPU 1 whatever the thread's current device.
TEST_F(CudaRuntime, TensorsAreAllocatedOnTheirOwnDevice) {
  if (CudaDeviceCount() < 2) GTEST_SKIP() << "needs two GPUs";
  SetCudaDevice(0);
  Tensor t = Tensor::Empty({1024}, DType::kF32, Device::Cuda(1));
  cudaPointerAttributes attributes{};
  ASSERT_EQ(cudaPointerGetAttributes(&attributes, t.raw_data()), cudaSuccess);
  EXPECT_EQ(attributes.device, 1);
}

TEST_F(CudaRuntime, CopiesRoundTripEveryDType) {
  const int64_t n = 1000;
  Tensor host = Tensor::Empty({n}, DType::kI64);
  for (int64_t i = 0; i < n; ++i) host.data<int64_t>()[i] = static_cast<int64_t>(rng()());
  for (DType dtype : {DType::kI64, DType::kF32, DType::kBF16, DType::kU16, DType::kI32}) {
    const int64_t count = n * 8 / static_cast<int64_t>(SizeOf(dtype));
    const Tensor view = Tensor::Wrap(host.raw_data(), {count}, dtype);
    Tensor device = CopyToDevice(view, Gpu());
    Tensor back = Tensor::Empty({count}, dtype);
    CopyAcrossDevices(device, back);
    EXPECT_EQ(std::memcmp(back.raw_data(), view.raw_data(), view.nbytes()), 0) << DTypeName(dtype);
  }
}

TEST_F(CudaRuntime, FillWritesEveryElementOfEveryDType) {
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kI32, DType::kI64, DType::kU16}) {
    Tensor device = Tensor::Empty({777}, dtype, Gpu());
    ops::Fill(device, 3.0);
    Tensor host = Tensor::Empty({777}, dtype);
    CopyAcrossDevices(device, host);
    Tensor expected = Tensor::Empty({777}, dtype);
    ops::Fill(expected, 3.0);
    EXPECT_EQ(std::memcmp(host.raw_data(), expected.raw_data(), host.nbytes()), 0)
        << DTypeName(dtype);
  }
}

// ---- Elementwise ops
// --------------------------------------------------------------------------------

TEST_F(CudaRuntime, ElementwiseMatchTheCpu) {
  SCOPED_TRACE(seed());
  const int64_t n = 100003;  // odd, more than one grid's worth of threads per block
  // f32: add, axpy and scale round once per element, like the CPU: 1e-6 covers a fused
  // multiply-add rounding differently (≤ 1 ulp ≈ 6e-8 relative per element).
  for (auto [dtype, tolerance] : {std::pair{DType::kF32, 1e-6}, std::pair{DType::kBF16, 1e-2}}) {
    const Tensor x = Representable(Uniform({n}, rng()), dtype);
    const Tensor y = Representable(Uniform({n}, rng()), dtype);
    Tensor x_dev = Upload(x, dtype), y_dev = Upload(y, dtype);
    Tensor ref = CloneHost(y);
    ops::AddInto(x, ref);
    ops::AddInto(x_dev, y_dev);
    double error = RelativeError(Download(y_dev), ref);
    ReportError(std::string("AddInto ") + std::string(DTypeName(dtype)), error, tolerance);
    EXPECT_LE(error, tolerance);

    ops::Axpy(-0.75, x, ref);
    ops::Axpy(-0.75, x_dev, y_dev);
    ops::Scale(ref, 1.5);
    ops::Scale(y_dev, 1.5);
    error = RelativeError(Download(y_dev), ref);
    ReportError(std::string("Axpy+Scale ") + std::string(DTypeName(dtype)), error, 2 * tolerance);
    EXPECT_LE(error, 2 * tolerance);

    // Σ x² in f64 of exactly representable values: only the order of the f64 additions differs.
    const double expected = ops::SumSquares(x);
    const double got = ops::SumSquares(x_dev);
    EXPECT_NEAR(got, expected, 1e-12 * expected);
  }
}

TEST_F(CudaRuntime, AdamWMatchesTheCpuOverThreeSteps) {
  SCOPED_TRACE(seed());
  const int64_t n = 4099;
  const Tensor p64 = Uniform({n}, rng()), m64 = Uniform({n}, rng(), -0.01, 0.01);
  const Tensor v64 = Uniform({n}, rng(), 0.0, 1e-4);
  Tensor p = HostF32(p64), m = HostF32(m64), v = HostF32(v64);
  Tensor p_dev = CopyToDevice(p, Gpu()), m_dev = CopyToDevice(m, Gpu()),
         v_dev = CopyToDevice(v, Gpu());
  const AdamWHyperParams hp;
  for (int64_t step = 1; step <= 3; ++step) {
    const Tensor g = HostF32(Uniform({n}, rng(), -0.1, 0.1));
    const Tensor g_dev = CopyToDevice(g, Gpu());
    AdamWUpdate(p, g, m, v, 1e-3f, 0.1f, hp, step);
    AdamWUpdate(p_dev, g_dev, m_dev, v_dev, 1e-3f, 0.1f, hp, step);
  }
  // Same f32 formula per element; only fused multiply-adds may round differently (≤ a few ulp).
  for (auto [name, got, want] : {std::tuple{"param", &p_dev, &p}, std::tuple{"m", &m_dev, &m},
                                 std::tuple{"v", &v_dev, &v}}) {
    const double error = RelativeError(Download(*got), Download(*want));
    ReportError(std::string("AdamW ") + name, error, 1e-6);
    EXPECT_LE(error, 1e-6) << name;
  }
}

// ---- Deferred device errors
// ------------------------------------------------------------------------

TEST_F(CudaRuntime, BadTokenIdEndsTheProcessAtTheNextSynchronisation) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // re-executes the binary: no CUDA across fork
  EXPECT_DEATH(
      {
        SetCudaDevice(0);
        Tensor ids_host = Tensor::Empty({3}, DType::kI32);
        ids_host.data<int32_t>()[0] = 1;
        ids_host.data<int32_t>()[1] = 7;  // the table has 5 rows
        ids_host.data<int32_t>()[2] = 0;
        const Tensor ids = CopyToDevice(ids_host, Gpu());
        const Tensor table = Upload(Uniform({5, 4}, rng()), DType::kF32);
        Tensor out = Poisoned({3, 4}, DType::kF32);
        ops::EmbeddingForward(ids, table, out);
        SynchronizeDevice(Gpu());
      },
      "token id lies outside the table's rows.*entry 1");
}

// ---- GEMM
// -------------------------------------------------------------------------------------------

struct GemmCase {
  int64_t m, n, k;
};

// C = alpha·op(A)·op(B) + beta·C on the GPU vs the CPU's f64 loop on the same values.
// f32 runs true fp32 (no TF32): errors are K·ε-sized, far under 1e-5 for K ≤ 300. bf16 operands
// are exact in f32 products; the error is the bf16 rounding of C (2^-9 ≈ 2e-3).
void CheckGemm(std::mt19937_64& rng, DType dtype, double tolerance, const GemmCase& shape,
               bool trans_a, bool trans_b, float alpha, float beta, int64_t row_offset) {
  const auto [m, n, k] = shape;
  const Shape a_shape = trans_a ? Shape{k, m} : Shape{m, k};
  const Shape b_shape = trans_b ? Shape{n, k} : Shape{k, n};
  // Operands are row views starting `row_offset` rows into a larger tensor, so their addresses
  // are not 256-byte aligned when row_offset > 0.
  auto with_offset = [&](const Shape& s) {
    return Representable(Uniform({s[0] + row_offset, s[1]}, rng), dtype);
  };
  const Tensor a_full = with_offset(a_shape), b_full = with_offset(b_shape);
  const Tensor c_full = with_offset({m, n});
  const Tensor a = a_full.Rows(row_offset, row_offset + a_shape[0]);
  const Tensor b = b_full.Rows(row_offset, row_offset + b_shape[0]);
  Tensor c = CloneHost(c_full).Rows(row_offset, row_offset + m);
  Tensor a_dev = Upload(a_full, dtype).Rows(row_offset, row_offset + a_shape[0]);
  Tensor b_dev = Upload(b_full, dtype).Rows(row_offset, row_offset + b_shape[0]);
  Tensor c_dev_full = beta == 0.0f ? Poisoned({m + row_offset, n}, dtype) : Upload(c_full, dtype);
  Tensor c_dev = c_dev_full.Rows(row_offset, row_offset + m);
  ops::Gemm(a, trans_a, b, trans_b, c, alpha, beta);
  ops::Gemm(a_dev, trans_a, b_dev, trans_b, c_dev, alpha, beta);
  const double error = RelativeError(Download(c_dev), CloneHost(c));
  std::ostringstream what;
  what << "Gemm " << DTypeName(dtype) << " M" << m << " N" << n << " K" << k << " ta" << trans_a
       << " tb" << trans_b << " alpha" << alpha << " beta" << beta << " offset" << row_offset;
  ReportError(what.str(), error, tolerance);
  EXPECT_LE(error, tolerance) << what.str();
}

class CudaGemm : public CudaTest {};

TEST_F(CudaGemm, MatchesCpuForEveryTransposeAndShape) {
  SCOPED_TRACE(seed());
  for (auto [dtype, tolerance] : {std::pair{DType::kF32, 1e-5}, std::pair{DType::kBF16, 1e-2}}) {
    for (const GemmCase& shape : {GemmCase{64, 64, 64}, GemmCase{37, 53, 71}, GemmCase{1, 300, 17},
                                  GemmCase{300, 1, 5}, GemmCase{128, 96, 300}}) {
      for (bool trans_a : {false, true}) {
        for (bool trans_b : {false, true}) {
          CheckGemm(rng(), dtype, tolerance, shape, trans_a, trans_b, 1.0f, 0.0f, 0);
        }
      }
    }
  }
}

TEST_F(CudaGemm, AccumulatesScalesAndAcceptsUnalignedViews) {
  SCOPED_TRACE(seed());
  for (auto [dtype, tolerance] : {std::pair{DType::kF32, 1e-5}, std::pair{DType::kBF16, 1e-2}}) {
    CheckGemm(rng(), dtype, tolerance, {37, 53, 71}, false, false, 0.5f, 1.0f, 0);
    CheckGemm(rng(), dtype, tolerance, {37, 53, 71}, true, false, -2.0f, 0.25f, 0);
    CheckGemm(rng(), dtype, tolerance, {37, 53, 71}, false, true, 1.0f, 0.0f, 3);
    CheckGemm(rng(), dtype, tolerance, {64, 64, 64}, true, true, 1.0f, 1.0f, 1);
  }
}

TEST_F(CudaGemm, ZeroInnerDimensionOrAlphaScalesC) {
  SCOPED_TRACE(seed());
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    // K = 0 with beta = 0: C = 0 even where C held NaN. alpha = 0: C = beta·C, A and B unread.
    const Tensor a = Upload(Uniform({8, 0}, rng()), dtype),
                 b = Upload(Uniform({0, 5}, rng()), dtype);
    Tensor c = Poisoned({8, 5}, dtype);
    ops::Gemm(a, false, b, false, c, 1.0f, 0.0f);
    EXPECT_EQ(CountMismatches(Download(c), Tensor::Zeros({8, 5}, DType::kF64)), 0);
    const Tensor c_values = Representable(Uniform({8, 5}, rng()), dtype);
    Tensor c2 = Upload(c_values, dtype);
    const Tensor a2 = Poisoned({8, 3}, dtype), b2 = Poisoned({3, 5}, dtype);
    ops::Gemm(a2, false, b2, false, c2, 0.0f, 2.0f);
    Tensor doubled = CloneHost(c_values);
    ops::Scale(doubled, 2.0);
    EXPECT_EQ(CountMismatches(Download(c2), doubled), 0);
  }
}

}  // namespace
}  // namespace aoetron::cudatest
