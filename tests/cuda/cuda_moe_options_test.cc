// The kernels of the MoE design-space options (issue 12) on CUDA against the CPU backend:
// core/ops/router_scores.h (sigmoid scores, row renormalisation, the z-loss's logsumexp and its
// gradient) and AoE's blockwise scoring (core/ops/expert_slices.h, core/ops/column_block.h).
// References are the CPU kernels in f64 on the same (representable) inputs.
//
// Tolerances: element-wise results (one exp, a multiply-add) are within a few f32 ulps of the f64
// reference: 1e-6 relative to the largest element. Row reductions over m ≤ 300 columns in f32
// (sums of positive terms: the normalisation, the logsumexp) lose at most ~m/2 ulps: 2e-6 as in
// cuda_routing_test.cc. The slice product sums d = 96 products per element in f32: √d ulps
// typical, d ulps worst (6e-6). Gathers and column copies move bits: exact. bf16: one bf16
// spacing of the output, 1e-2.
#include <gtest/gtest.h>

#include <string>

#include "core/ops/column_block.h"
#include "core/ops/expert_slices.h"
#include "core/ops/router_scores.h"
#include "tests/cuda/cuda_test_util.h"

namespace aoetron::cudatest {
namespace {

constexpr double kPointwise = 1e-6;
constexpr double kRowReduce = 2e-6;
constexpr double kDotProduct = 6e-6;
constexpr DType kDTypes[] = {DType::kF32, DType::kBF16};

class CudaMoeOptions : public CudaTest {};

TEST_F(CudaMoeOptions, RouterScoresMatchTheCpu) {
  SCOPED_TRACE(seed());
  const int64_t n = 257, m = 64;  // tokens, experts
  for (DType dtype : kDTypes) {
    const Tensor logits = Representable(Uniform({n, m}, rng(), -4.0, 4.0), dtype);
    const Tensor dy = Representable(Uniform({n, m}, rng()), dtype);
    const Tensor logits_dev = Upload(logits, dtype), dy_dev = Upload(dy, dtype);

    Tensor s_ref = Tensor::Empty({n, m}, DType::kF64);
    ops::Sigmoid(logits, s_ref);
    Tensor s = Poisoned({n, m}, dtype);
    ops::Sigmoid(logits_dev, s);
    ExpectClose("Sigmoid", dtype, s, s_ref, kPointwise);

    // The backward ops on the CPU's own forward values (so both see the same y).
    const Tensor s_in = Representable(s_ref, dtype);
    const Tensor s_in_dev = Upload(s_in, dtype);
    Tensor dx_ref = Tensor::Zeros({n, m}, DType::kF64);
    ops::SigmoidBackward(dy, s_in, dx_ref);
    Tensor dx = Upload(Tensor::Zeros({n, m}, DType::kF64), dtype);
    ops::SigmoidBackward(dy_dev, s_in_dev, dx);
    ExpectClose("SigmoidBackward", dtype, dx, dx_ref, kPointwise);

    Tensor q_ref = Tensor::Empty({n, m}, DType::kF64);
    ops::RowNormalize(s_in, q_ref);
    Tensor q = Poisoned({n, m}, dtype);
    ops::RowNormalize(s_in_dev, q);
    ExpectClose("RowNormalize", dtype, q, q_ref, kRowReduce);

    const Tensor q_in = Representable(q_ref, dtype);
    Tensor dn_ref = Tensor::Zeros({n, m}, DType::kF64);
    ops::RowNormalizeBackward(dy, q_in, s_in, dn_ref);
    Tensor dn = Upload(Tensor::Zeros({n, m}, DType::kF64), dtype);
    ops::RowNormalizeBackward(dy_dev, Upload(q_in, dtype), s_in_dev, dn);
    ExpectClose("RowNormalizeBackward", dtype, dn, dn_ref, kRowReduce);

    Tensor lse_ref = Tensor::Empty({n}, DType::kF64);
    const double z_ref = ops::RowLogSumExp(logits, lse_ref);
    Tensor lse = Poisoned({n}, dtype);
    const double z = ops::RowLogSumExp(logits_dev, lse);
    ExpectClose("RowLogSumExp", dtype, lse, lse_ref, kRowReduce);
    EXPECT_NEAR(z, z_ref, (dtype == DType::kBF16 ? kBf16Tolerance : 2 * kRowReduce) * z_ref)
        << "Σ lse²";

    const Tensor lse_in = Representable(lse_ref, dtype);
    Tensor dz_ref = Tensor::Zeros({n, m}, DType::kF64);
    ops::LogSumExpSquareBackward(logits, lse_in, 0.25, dz_ref);
    Tensor dz = Upload(Tensor::Zeros({n, m}, DType::kF64), dtype);
    ops::LogSumExpSquareBackward(logits_dev, Upload(lse_in, dtype), 0.25, dz);
    ExpectClose("LogSumExpSquareBackward", dtype, dz, dz_ref, kPointwise);
  }
}

TEST_F(CudaMoeOptions, AoeBlockwiseSliceOpsMatchTheCpu) {
  SCOPED_TRACE(seed());
  const int64_t tokens = 130, d = 96, n = 12, k = 3, r = 8;
  for (DType dtype : kDTypes) {
    const Tensor x = Representable(Uniform({tokens, d}, rng()), dtype);
    const Tensor w = Representable(Uniform({d, n * r}, rng()), dtype);
    const Tensor c = Representable(Uniform({tokens, n * r}, rng()), dtype);
    const Tensor index = RandomIndex({tokens, k}, rng(), 0, static_cast<int32_t>(n));
    const Tensor index_dev = UploadIndex(index);

    Tensor taken_ref = Tensor::Empty({tokens, k * r}, DType::kF64);
    ops::TakeExpertSlices(c, index, taken_ref);
    Tensor taken = Poisoned({tokens, k * r}, dtype);
    ops::TakeExpertSlices(Upload(c, dtype), index_dev, taken);
    EXPECT_EQ(CountMismatches(Download(taken), taken_ref), 0) << "TakeExpertSlices";

    const Tensor dout = Representable(Uniform({tokens, k * r}, rng()), dtype);
    const int64_t first = 4, block = 5;  // a block of experts in the middle
    Tensor dc_ref = Tensor::Zeros({tokens, block * r}, DType::kF64);
    ops::TakeExpertSlicesBackward(dout, index, n, first, dc_ref);
    Tensor dc = Upload(Tensor::Zeros({tokens, block * r}, DType::kF64), dtype);
    ops::TakeExpertSlicesBackward(Upload(dout, dtype), index_dev, n, first, dc);
    ExpectClose("TakeExpertSlicesBackward", dtype, dc, dc_ref, kPointwise);

    Tensor product_ref = Tensor::Empty({tokens, k * r}, DType::kF64);
    ops::ExpertSliceProduct(x, w, index, product_ref);
    Tensor product = Poisoned({tokens, k * r}, dtype);
    ops::ExpertSliceProduct(Upload(x, dtype), Upload(w, dtype), index_dev, product);
    ExpectClose("ExpertSliceProduct", dtype, product, product_ref, kDotProduct);

    Tensor columns_ref = Tensor::Zeros({d, block * r}, DType::kF64);
    ops::CopyColumns(w, first * r, columns_ref, 0, block * r);
    Tensor columns = Upload(Tensor::Zeros({d, block * r}, DType::kF64), dtype);
    ops::CopyColumns(Upload(w, dtype), first * r, columns, 0, block * r);
    EXPECT_EQ(CountMismatches(Download(columns), columns_ref), 0) << "CopyColumns";
    Tensor sum_ref = CloneHost(w);
    ops::AddColumns(columns_ref, 0, sum_ref, first * r, block * r);
    Tensor sum = Upload(w, dtype);
    ops::AddColumns(columns, 0, sum, first * r, block * r);
    ExpectClose("AddColumns", dtype, sum, sum_ref, kPointwise);
  }
}

}  // namespace
}  // namespace aoetron::cudatest
