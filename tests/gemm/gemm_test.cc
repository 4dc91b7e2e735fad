#include "core/ops/gemm.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace aoetron::ops {
namespace {

template <typename T>
Tensor RandomTensor(Shape shape, std::mt19937& rng) {
  Tensor t = Tensor::Empty(std::move(shape), DTypeOf<T>::value);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  T* data = t.data<T>();
  for (int64_t i = 0; i < t.numel(); ++i) data[i] = static_cast<T>(uniform(rng));
  return t;
}

template <typename T>
void FillWith(Tensor& t, T value) {
  T* data = t.data<T>();
  for (int64_t i = 0; i < t.numel(); ++i) data[i] = value;
}

// The expected result computed with the textbook triple loop in double, plus for each element
// Σ_p |alpha · op(A)[i][p] · op(B)[p][j]| + |beta · C[i][j]|, which bounds the rounding error of
// any summation order: |error| ≤ (K + 2) · u · that sum, u the unit roundoff of T.
struct Reference {
  std::vector<double> value;
  std::vector<double> magnitude;
};

template <typename T>
Reference NaiveGemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& c,
                    int64_t m, int64_t n, int64_t k, double alpha, double beta) {
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  const T* pc = c.data<T>();
  Reference ref{std::vector<double>(m * n), std::vector<double>(m * n)};
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0.0, magnitude = 0.0;
      for (int64_t p = 0; p < k; ++p) {
        const double a_ip = trans_a ? pa[p * m + i] : pa[i * k + p];
        const double b_pj = trans_b ? pb[j * k + p] : pb[p * n + j];
        sum += a_ip * b_pj;
        magnitude += std::abs(alpha * a_ip * b_pj);
      }
      const double old_c = beta == 0.0 ? 0.0 : beta * static_cast<double>(pc[i * n + j]);
      ref.value[i * n + j] = alpha * sum + old_c;
      ref.magnitude[i * n + j] = magnitude + std::abs(old_c);
    }
  }
  return ref;
}

template <typename T>
void ExpectMatches(const Tensor& c, const Reference& ref, int64_t k, const std::string& what) {
  const double unit_roundoff = std::numeric_limits<T>::epsilon() / 2;
  const T* pc = c.data<T>();
  int reported = 0;
  for (size_t i = 0; i < ref.value.size(); ++i) {
    const double bound = (k + 2) * unit_roundoff * ref.magnitude[i] + 1e-30;
    const double error = std::abs(static_cast<double>(pc[i]) - ref.value[i]);
    if (!(error <= bound) && reported++ < 5) {  // !(<=) also catches NaN
      ADD_FAILURE() << what << ": element " << i << " is " << pc[i] << ", expected " << ref.value[i]
                    << " (error " << error << " > bound " << bound << ")";
    }
  }
}

Shape OperandShape(bool trans, int64_t rows, int64_t cols) {
  return trans ? Shape{cols, rows} : Shape{rows, cols};
}

template <typename T>
void CheckOne(int64_t m, int64_t n, int64_t k, bool trans_a, bool trans_b, float alpha, float beta,
              bool poison_c, std::mt19937& rng) {
  const std::string what = std::string(DTypeName(DTypeOf<T>::value)) + " M=" + std::to_string(m) +
                           " N=" + std::to_string(n) + " K=" + std::to_string(k) +
                           " trans_a=" + std::to_string(trans_a) +
                           " trans_b=" + std::to_string(trans_b) +
                           " alpha=" + std::to_string(alpha) + " beta=" + std::to_string(beta);
  Tensor a = RandomTensor<T>(OperandShape(trans_a, m, k), rng);
  Tensor b = RandomTensor<T>(OperandShape(trans_b, k, n), rng);
  Tensor c = RandomTensor<T>({m, n}, rng);
  if (poison_c) FillWith<T>(c, std::numeric_limits<T>::quiet_NaN());
  const Reference ref = NaiveGemm<T>(a, trans_a, b, trans_b, c, m, n, k, alpha, beta);
  Gemm(a, trans_a, b, trans_b, c, alpha, beta);
  ExpectMatches<T>(c, ref, k, what);
}

// Odd sizes exercise the kernels' edge handling; 1 exercises the matrix-vector paths.
constexpr int64_t kSizes[] = {1, 3, 16, 17, 64, 129};

class GemmTransTest : public ::testing::TestWithParam<std::tuple<bool, bool>> {};

TEST_P(GemmTransTest, F32MatchesNaiveLoopOnManyShapes) {
  const auto [trans_a, trans_b] = GetParam();
  std::mt19937 rng(1234);
  for (int64_t m : kSizes)
    for (int64_t n : kSizes)
      for (int64_t k : kSizes) CheckOne<float>(m, n, k, trans_a, trans_b, 1.0f, 0.0f, true, rng);
  // Sizes past the library's blocking (several cache blocks along every dimension).
  CheckOne<float>(300, 517, 611, trans_a, trans_b, 1.0f, 0.0f, true, rng);
}

TEST_P(GemmTransTest, F64MatchesNaiveLoopOnManyShapes) {
  const auto [trans_a, trans_b] = GetParam();
  std::mt19937 rng(99);
  for (int64_t m : kSizes)
    for (int64_t n : kSizes)
      for (int64_t k : kSizes) CheckOne<double>(m, n, k, trans_a, trans_b, 1.0f, 0.0f, true, rng);
  // Several tiles of the reference loop's blocking along every dimension, with ragged edges.
  CheckOne<double>(71, 300, 333, trans_a, trans_b, 1.0f, 0.0f, true, rng);
}

TEST_P(GemmTransTest, AlphaAndBetaScaleBothTerms) {
  const auto [trans_a, trans_b] = GetParam();
  std::mt19937 rng(7);
  for (auto [alpha, beta] : {std::pair{0.5f, 1.0f}, {-2.0f, -1.5f}, {1.0f, 0.25f}, {3.0f, 0.0f}}) {
    CheckOne<float>(37, 45, 53, trans_a, trans_b, alpha, beta, false, rng);
    CheckOne<double>(37, 45, 53, trans_a, trans_b, alpha, beta, false, rng);
  }
}

INSTANTIATE_TEST_SUITE_P(AllTransposes, GemmTransTest,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool()),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) ? "At" : "A") +
                                  (std::get<1>(info.param) ? "Bt" : "B");
                         });

template <typename T>
void ExpectAllZero(const Tensor& c, const char* what) {
  for (int64_t i = 0; i < c.numel(); ++i) {
    ASSERT_EQ(c.data<T>()[i], T(0)) << what << ": element " << i;
  }
}

TEST(GemmTest, EmptyInnerDimensionGivesBetaTimesC) {
  // K = 0: op(A)·op(B) is a zero matrix. dnnl_sgemm alone leaves C untouched here, so a
  // NaN-poisoned C with beta = 0 would survive without Gemm's own handling.
  Tensor a = Tensor::Empty({4, 0}, DType::kF32);
  Tensor b = Tensor::Empty({0, 5}, DType::kF32);
  Tensor c = Tensor::Empty({4, 5}, DType::kF32);
  FillWith<float>(c, std::numeric_limits<float>::quiet_NaN());
  Gemm(a, false, b, false, c);
  ExpectAllZero<float>(c, "f32 beta=0");

  FillWith<float>(c, 2.0f);
  Gemm(a, false, b, false, c, 1.0f, 1.5f);
  for (int64_t i = 0; i < c.numel(); ++i) EXPECT_EQ(c.data<float>()[i], 3.0f);

  Tensor a64 = Tensor::Empty({4, 0}, DType::kF64);
  Tensor b64 = Tensor::Empty({0, 5}, DType::kF64);
  Tensor c64 = Tensor::Empty({4, 5}, DType::kF64);
  FillWith<double>(c64, std::numeric_limits<double>::quiet_NaN());
  Gemm(a64, false, b64, false, c64);
  ExpectAllZero<double>(c64, "f64 beta=0");
}

TEST(GemmTest, AlphaZeroDoesNotReadInputs) {
  // BLAS semantics: alpha = 0 means C = beta · C without touching A and B (NaNs there included).
  Tensor a = Tensor::Empty({3, 4}, DType::kF32);
  Tensor b = Tensor::Empty({4, 2}, DType::kF32);
  FillWith<float>(a, std::numeric_limits<float>::quiet_NaN());
  FillWith<float>(b, std::numeric_limits<float>::infinity());
  Tensor c = Tensor::Empty({3, 2}, DType::kF32);
  FillWith<float>(c, std::numeric_limits<float>::quiet_NaN());
  Gemm(a, false, b, false, c, 0.0f, 0.0f);
  ExpectAllZero<float>(c, "alpha=0 beta=0");
}

TEST(GemmTest, RowRangeViewsReadAndWriteOnlyTheirRows) {
  std::mt19937 rng(5);
  for (DType dtype : {DType::kF32, DType::kF64}) {
    // A block of 7 rows of a [20, 33] activation times rows [4, 37) of a [50, 19] weight
    // (as an expert's slice of a stacked weight), written into rows [9, 16) of a [30, 19] output.
    const bool is_f32 = dtype == DType::kF32;
    Tensor a_full =
        is_f32 ? RandomTensor<float>({20, 33}, rng) : RandomTensor<double>({20, 33}, rng);
    Tensor b_full =
        is_f32 ? RandomTensor<float>({50, 19}, rng) : RandomTensor<double>({50, 19}, rng);
    Tensor c_full = Tensor::Empty({30, 19}, dtype);
    if (is_f32) {
      FillWith<float>(c_full, -7.0f);
    } else {
      FillWith<double>(c_full, -7.0);
    }
    Tensor a = a_full.Rows(3, 10);
    Tensor b = b_full.Rows(4, 37);
    Tensor c = c_full.Rows(9, 16);
    if (is_f32) {
      FillWith<float>(c, std::numeric_limits<float>::quiet_NaN());
      const Reference ref = NaiveGemm<float>(a, false, b, false, c, 7, 19, 33, 1.0, 0.0);
      Gemm(a, false, b, false, c);
      ExpectMatches<float>(c, ref, 33, "f32 row views");
    } else {
      FillWith<double>(c, std::numeric_limits<double>::quiet_NaN());
      const Reference ref = NaiveGemm<double>(a, false, b, false, c, 7, 19, 33, 1.0, 0.0);
      Gemm(a, false, b, false, c);
      ExpectMatches<double>(c, ref, 33, "f64 row views");
    }
    // Rows outside the view are untouched.
    for (int64_t row : {0, 8, 16, 29}) {
      for (int64_t col = 0; col < 19; ++col) {
        const double value =
            is_f32 ? c_full.data<float>()[row * 19 + col] : c_full.data<double>()[row * 19 + col];
        ASSERT_EQ(value, -7.0) << "row " << row << " col " << col;
      }
    }
  }
}

TEST(GemmTest, LeadingDimensionsFoldIntoRows) {
  // x: [batch 2, seq 5, 12] times W: [12, 9] → [2, 5, 9], i.e. a [10, 12]·[12, 9] product.
  std::mt19937 rng(11);
  Tensor x = RandomTensor<float>({2, 5, 12}, rng);
  Tensor w = RandomTensor<float>({12, 9}, rng);
  Tensor y = Tensor::Empty({2, 5, 9}, DType::kF32);
  const Reference ref = NaiveGemm<float>(x, false, w, false, y, 10, 9, 12, 1.0, 0.0);
  Gemm(x, false, w, false, y);
  ExpectMatches<float>(y, ref, 12, "rank-3 activations");

  // The weight gradient dW = xᵀ·dy with x and dy of rank 3: K is the folded token dimension.
  Tensor dy = RandomTensor<float>({2, 5, 9}, rng);
  Tensor dw = Tensor::Empty({12, 9}, DType::kF32);
  const Reference ref_dw = NaiveGemm<float>(x, true, dy, false, dw, 12, 9, 10, 1.0, 0.0);
  Gemm(x, true, dy, false, dw);
  ExpectMatches<float>(dw, ref_dw, 10, "rank-3 weight gradient");
}

TEST(GemmTest, SameThreadCountGivesSameBits) {
  // A shape where oneDNN splits K across threads (see gemm.h): still reproducible run to run.
  std::mt19937 rng(3);
  Tensor a = RandomTensor<float>({256, 2048}, rng);
  Tensor b = RandomTensor<float>({768, 2048}, rng);
  Tensor c1 = Tensor::Empty({256, 768}, DType::kF32);
  Tensor c2 = Tensor::Empty({256, 768}, DType::kF32);
  Gemm(a, false, b, true, c1);
  for (int rep = 0; rep < 3; ++rep) {
    Gemm(a, false, b, true, c2);
    ASSERT_EQ(std::memcmp(c1.raw_data(), c2.raw_data(), c1.nbytes()), 0) << "rep " << rep;
  }
}

TEST(GemmTest, F64IsIndependentOfThreadCount) {
  std::mt19937 rng(8);
  Tensor a = RandomTensor<double>({150, 301}, rng);
  Tensor b = RandomTensor<double>({301, 90}, rng);
  Tensor c1 = Tensor::Empty({150, 90}, DType::kF64);
  Tensor c2 = Tensor::Empty({150, 90}, DType::kF64);
  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(1);
  Gemm(a, false, b, false, c1);
  omp_set_num_threads(2);
  Gemm(a, false, b, false, c2);
  omp_set_num_threads(saved_threads);
  EXPECT_EQ(std::memcmp(c1.raw_data(), c2.raw_data(), c1.nbytes()), 0);
}

int OsThreadsInProcess() {
  int count = 0;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  while (dirent* entry = readdir(dir)) count += entry->d_name[0] != '.';
  closedir(dir);
  return count;
}

TEST(GemmTest, CallsFromAParallelRegionRunOnTheirOwnThreadOnly) {
  // Inside an OpenMP parallel region each call must run on its calling thread: the process must
  // not grow new threads (oversubscription), even with nested parallelism allowed, and the
  // concurrent calls must each be correct.
  std::mt19937 rng(21);
  constexpr int kThreads = 2;
  std::vector<Tensor> as, bs, cs;
  std::vector<Reference> refs;
  for (int t = 0; t < kThreads; ++t) {
    as.push_back(RandomTensor<float>({192, 160}, rng));
    bs.push_back(RandomTensor<float>({160, 224}, rng));
    cs.push_back(Tensor::Empty({192, 224}, DType::kF32));
    refs.push_back(NaiveGemm<float>(as[t], false, bs[t], false, cs[t], 192, 224, 160, 1.0, 0.0));
  }
  const int saved_levels = omp_get_max_active_levels();
  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(kThreads);
  Gemm(as[0], false, bs[0], false, cs[0]);  // starts the OpenMP pool and oneDNN's kernels
  const int threads_before = OsThreadsInProcess();
  ASSERT_GT(threads_before, 0) << "/proc/self/task unreadable";
  for (int levels : {1, 4}) {
    omp_set_max_active_levels(levels);
    int threads_inside[kThreads] = {};
#pragma omp parallel num_threads(kThreads)
    {
      const int me = omp_get_thread_num();
      for (int rep = 0; rep < 3; ++rep) Gemm(as[me], false, bs[me], false, cs[me]);
      threads_inside[me] = OsThreadsInProcess();
    }
    for (int t = 0; t < kThreads; ++t) {
      EXPECT_LE(threads_inside[t], threads_before) << "max_active_levels " << levels;
      ExpectMatches<float>(cs[t], refs[t], 160, "call from thread " + std::to_string(t));
    }
  }
  omp_set_max_active_levels(saved_levels);
  omp_set_num_threads(saved_threads);
}

TEST(GemmTest, F64ReferenceIsFastEnoughForTests) {
  // The finite-difference tests call the reference loop many times.
  std::mt19937 rng(2);
  Tensor a = RandomTensor<double>({256, 256}, rng);
  Tensor b = RandomTensor<double>({256, 256}, rng);
  Tensor c = Tensor::Empty({256, 256}, DType::kF64);
  const double start = omp_get_wtime();
  Gemm(a, false, b, true, c);
  const double seconds = omp_get_wtime() - start;
  EXPECT_LT(seconds, 0.5) << "256³ f64 took " << seconds << " s";
}

class GemmDeathTest : public ::testing::Test {
 protected:
  // The OpenMP pool may already hold threads; re-executing the binary is the safe way to fork.
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(GemmDeathTest, MismatchedShapesNameTheOperands) {
  Tensor a = Tensor::Zeros({4, 3}, DType::kF32);
  Tensor b = Tensor::Zeros({5, 6}, DType::kF32);
  Tensor c = Tensor::Zeros({4, 6}, DType::kF32);
  EXPECT_DEATH(Gemm(a, false, b, false, c),
               "inner dimensions differ.*f32\\[4, 3\\].*f32\\[5, 6\\]");
  Tensor b_ok = Tensor::Zeros({3, 6}, DType::kF32);
  Tensor c_bad = Tensor::Zeros({4, 7}, DType::kF32);
  EXPECT_DEATH(Gemm(a, false, b_ok, false, c_bad),
               "C must be \\[M, N\\] = \\[4, 6\\].*f32\\[4, 7\\]");
  Tensor vector = Tensor::Zeros({3}, DType::kF32);
  EXPECT_DEATH(Gemm(a, false, vector, false, c), "operand B must have rank >= 2");
}

TEST_F(GemmDeathTest, RejectsMixedDtypesAndIntegerTypes) {
  Tensor a = Tensor::Zeros({2, 2}, DType::kF32);
  Tensor b = Tensor::Zeros({2, 2}, DType::kF64);
  Tensor c = Tensor::Zeros({2, 2}, DType::kF32);
  EXPECT_DEATH(Gemm(a, false, b, false, c), "share a dtype.*B f64\\[2, 2\\]");
  Tensor ia = Tensor::Zeros({2, 2}, DType::kI32);
  Tensor ib = Tensor::Zeros({2, 2}, DType::kI32);
  Tensor ic = Tensor::Zeros({2, 2}, DType::kI32);
  EXPECT_DEATH(Gemm(ia, false, ib, false, ic), "dtype must be f32 or f64");
}

TEST_F(GemmDeathTest, CudaTensorsHaveNoKernelInThisBuild) {
  if (CudaBackendBuilt()) GTEST_SKIP() << "this build has the CUDA backend (tests/cuda)";
  // Never dereferenced: the device check fails first.
  void* fake_device_pointer = reinterpret_cast<void*>(uintptr_t{0x1000});
  Tensor a = Tensor::Wrap(fake_device_pointer, {2, 2}, DType::kF32, Device::Cuda(0));
  Tensor b = Tensor::Wrap(fake_device_pointer, {2, 2}, DType::kF32, Device::Cuda(0));
  Tensor c = Tensor::Wrap(fake_device_pointer, {2, 2}, DType::kF32, Device::Cuda(0));
  EXPECT_DEATH(Gemm(a, false, b, false, c), "no CUDA kernel for Gemm in this build");
  Tensor c_cpu = Tensor::Zeros({2, 2}, DType::kF32);
  EXPECT_DEATH(Gemm(a, false, b, false, c_cpu), "one device");
}

TEST_F(GemmDeathTest, OutputMayNotAliasAnInput) {
  Tensor x = Tensor::Zeros({4, 4}, DType::kF32);
  Tensor w = Tensor::Zeros({4, 4}, DType::kF32);
  EXPECT_DEATH(Gemm(x, false, w, false, x), "overlaps an input");
}

}  // namespace
}  // namespace aoetron::ops
