// The run-time ISA choice (core/cpu_isa.h): the active ISA is one this CPU runs, AVX2 can be
// forced on any machine the build runs on, and the AVX2 and AVX-512 variants of the kernels
// compute the same function (within f32 rounding) and each is deterministic. Every op test also
// runs a second time with AOETRON_CPU_ISA=avx2 (tests/core/CMakeLists.txt, prefix "avx2."), so
// both variants are checked against finite differences wherever CI runs; on a CPU without
// AVX-512 the comparison below says so and skips.
#include "core/cpu_isa.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

#include "core/ops/attention.h"
#include "tests/core/gradcheck.h"

namespace aoetron::optest {
namespace {

TEST(CpuIsa, TheActiveIsaRunsOnThisCpu) {
  EXPECT_TRUE(CpuSupports(ActiveCpuIsa()));
  EXPECT_TRUE(CpuSupports(CpuIsa::kAvx2));  // the build's baseline: it would not run otherwise
  std::printf("active ISA %s; this CPU %s AVX-512\n", CpuIsaName(ActiveCpuIsa()),
              CpuSupports(CpuIsa::kAvx512) ? "has" : "lacks");
  const char* forced = std::getenv("AOETRON_CPU_ISA");
  if (forced != nullptr && *forced != '\0') {
    EXPECT_STREQ(CpuIsaName(ActiveCpuIsa()), forced);
  }
}

TEST(CpuIsa, ForcingAnIsaTheCpuLacksIsRefused) {
  if (CpuSupports(CpuIsa::kAvx512)) {
    GTEST_SKIP() << "this CPU has AVX-512: nothing to refuse";
  }
  const absl::Status status = ForceCpuIsa(CpuIsa::kAvx512);
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
}

struct Outputs {
  Tensor out, lse, dqkv;
};

// Attention forward + backward, the kernels with an AVX-512 and an AVX2 variant
// (core/ops/cpu/attention_cpu.cc); the others are compiled once, for x86-64-v3.
Outputs RunAttention(const Tensor& qkv, const Tensor& dout) {
  Outputs o;
  const Shape& q = qkv.shape();
  o.out = Tensor::Empty({q[0], q[1], q[3], q[4]}, DType::kF32);
  o.lse = Tensor::Empty({q[0], q[3], q[1]}, DType::kF32);
  o.dqkv = Tensor::Zeros(q, DType::kF32);
  ops::CausalAttentionForward(qkv, o.out, o.lse);
  ops::CausalAttentionBackward(dout, qkv, o.out, o.lse, o.dqkv);
  return o;
}

bool BitwiseEqual(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

TEST(CpuIsa, Avx2AndAvx512VariantsAgreeAndEachIsDeterministic) {
  if (!CpuSupports(CpuIsa::kAvx512)) {
    GTEST_SKIP() << "this CPU has no AVX-512: only the AVX2 variants run here (the avx2.* and "
                    "plain op tests are the same run)";
  }
  const CpuIsa before = ActiveCpuIsa();
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  // T = 131: not a multiple of either variant's row block, tile width or 64-key block.
  const Tensor qkv = ToF32(Uniform({2, 131, 3, 2, 64}, rng, -2.0, 2.0));
  const Tensor dout = ToF32(Uniform({2, 131, 2, 64}, rng));

  ASSERT_TRUE(ForceCpuIsa(CpuIsa::kAvx2).ok());
  const Outputs a = RunAttention(qkv, dout);
  const Outputs a_again = RunAttention(qkv, dout);
  ASSERT_TRUE(ForceCpuIsa(CpuIsa::kAvx512).ok());
  const Outputs b = RunAttention(qkv, dout);
  const Outputs b_again = RunAttention(qkv, dout);
  ASSERT_TRUE(ForceCpuIsa(before).ok());

  for (auto field : {&Outputs::out, &Outputs::lse, &Outputs::dqkv}) {
    EXPECT_TRUE(BitwiseEqual(a.*field, a_again.*field));
    EXPECT_TRUE(BitwiseEqual(b.*field, b_again.*field));
  }
  // Each variant's f32 error against f64 is a few 1e-6 normwise (sums of ≤ 131 terms and exps of
  // logits up to ~30: attention_test's F32MatchesF64 bounds it by 2e-5); the two differ only in
  // the order they add (vector widths 8 and 16, tile shapes), so their difference is at most the
  // sum of two such errors, a few 1e-6 too. 2e-5 keeps that margin; an indexing error is O(1).
  EXPECT_TRUE(NormwiseClose("out", a.out, b.out, 2e-5));
  EXPECT_TRUE(NormwiseClose("lse", a.lse, b.lse, 2e-5));
  EXPECT_TRUE(NormwiseClose("dqkv", a.dqkv, b.dqkv, 2e-5));
  // The two really are different code: a forced ISA that changed nothing would compare a variant
  // with itself.
  EXPECT_FALSE(BitwiseEqual(a.dqkv, b.dqkv));
}

}  // namespace
}  // namespace aoetron::optest
