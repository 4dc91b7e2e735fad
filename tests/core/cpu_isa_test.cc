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
#include "core/ops/cross_entropy.h"
#include "core/ops/swiglu.h"
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
  Tensor out, lse, dqkv, swiglu, dgate, dup, losses;
};

// Attention forward + backward, SwiGLU forward + backward and cross-entropy on fixed inputs.
Outputs RunKernels(const Tensor& qkv, const Tensor& dout, const Tensor& gate, const Tensor& up,
                   const Tensor& logits, const Tensor& targets) {
  Outputs o;
  const Shape& q = qkv.shape();
  o.out = Tensor::Empty({q[0], q[1], q[3], q[4]}, DType::kF32);
  o.lse = Tensor::Empty({q[0], q[3], q[1]}, DType::kF32);
  o.dqkv = Tensor::Zeros(q, DType::kF32);
  ops::CausalAttentionForward(qkv, o.out, o.lse);
  ops::CausalAttentionBackward(dout, qkv, o.out, o.lse, o.dqkv);
  o.swiglu = Tensor::Empty(gate.shape(), DType::kF32);
  ops::SwiGluForward(gate, up, o.swiglu);
  o.dgate = Tensor::Zeros(gate.shape(), DType::kF32);
  o.dup = Tensor::Zeros(gate.shape(), DType::kF32);
  ops::SwiGluBackward(o.swiglu, gate, up, o.dgate, o.dup);
  o.losses = Tensor::Empty({logits.dim(0)}, DType::kF32);
  ops::CrossEntropyForward(logits, targets, o.losses);
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
  const Tensor qkv = ToF32(Uniform({2, 131, 3, 2, 64}, rng, -2.0, 2.0));
  const Tensor dout = ToF32(Uniform({2, 131, 2, 64}, rng));
  const Tensor gate = ToF32(Uniform({10, 100}, rng, -6.0, 6.0));
  const Tensor up = ToF32(Uniform({10, 100}, rng));
  const Tensor logits = ToF32(Uniform({7, 5003}, rng, -8.0, 8.0));
  Tensor targets = Tensor::Empty({7}, DType::kI32);
  for (int i = 0; i < 7; ++i) targets.data<int32_t>()[i] = static_cast<int32_t>(rng() % 5003);

  ASSERT_TRUE(ForceCpuIsa(CpuIsa::kAvx2).ok());
  const Outputs a = RunKernels(qkv, dout, gate, up, logits, targets);
  const Outputs a_again = RunKernels(qkv, dout, gate, up, logits, targets);
  ASSERT_TRUE(ForceCpuIsa(CpuIsa::kAvx512).ok());
  const Outputs b = RunKernels(qkv, dout, gate, up, logits, targets);
  const Outputs b_again = RunKernels(qkv, dout, gate, up, logits, targets);
  ASSERT_TRUE(ForceCpuIsa(before).ok());

  for (auto field : {&Outputs::out, &Outputs::lse, &Outputs::dqkv, &Outputs::swiglu,
                     &Outputs::dgate, &Outputs::dup, &Outputs::losses}) {
    EXPECT_TRUE(BitwiseEqual(a.*field, a_again.*field));
    EXPECT_TRUE(BitwiseEqual(b.*field, b_again.*field));
  }
  // The two differ only in the order f32 sums are added (vector widths 8 and 16): the bounds of
  // attention_test's F32MatchesF64 (2e-5 normwise) hold between them as they hold against f64.
  EXPECT_TRUE(NormwiseClose("out", a.out, b.out, 2e-5));
  EXPECT_TRUE(NormwiseClose("lse", a.lse, b.lse, 2e-5));
  EXPECT_TRUE(NormwiseClose("dqkv", a.dqkv, b.dqkv, 2e-5));
  EXPECT_TRUE(NormwiseClose("swiglu", a.swiglu, b.swiglu, 1e-6));
  EXPECT_TRUE(NormwiseClose("dgate", a.dgate, b.dgate, 1e-6));
  EXPECT_TRUE(NormwiseClose("dup", a.dup, b.dup, 1e-6));
  // Each loss is log Σ e^(x−max) over 5003 logits, summed in 8 or 16 lanes: the sums' rounding
  // is at most (5003/8 + 4)·6e-8 ≈ 4e-5 relative, an absolute 4e-5 on losses of about 9.
  EXPECT_TRUE(NormwiseClose("losses", a.losses, b.losses, 1e-5));
}

}  // namespace
}  // namespace aoetron::optest
