// The MoE/AoE routing kernels on CUDA against the CPU backend: top-K (ties included), grouped L2
// norms, the fused AoE gate, the expert layout, permute / gather / combine and their backwards.
//
// Selections (indices, the selected values, the layout, the gathers) must match the CPU exactly.
// Sums over the K choices of a token run in the CPU's order of j, so in f32 they are compared bit
// for bit with the CPU's f32 kernels; the weighted combine (multiply-adds, which the GPU may
// fuse) uses the tolerances of cuda_ops_test.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <string>

#include "core/device_transfer.h"
#include "core/ops/aoe_gate.h"
#include "core/ops/expert_permute.h"
#include "core/ops/grouped_l2_norm.h"
#include "core/ops/softmax.h"
#include "core/ops/topk.h"
#include "tests/cuda/cuda_test_util.h"

namespace aoetron::cudatest {
namespace {

constexpr double kPointwise = 1e-6;
constexpr double kRowReduce = 2e-6;
constexpr DType kDTypes[] = {DType::kF32, DType::kBF16};

void ExpectEqual(const std::string& what, const Tensor& got_device, const Tensor& ref) {
  EXPECT_EQ(CountMismatches(Download(got_device), ref), 0) << what;
}

// i32 host tensor → f64 host tensor (for CountMismatches).
Tensor IndexAsF64(const Tensor& i32) {
  Tensor out = Tensor::Empty(i32.shape(), DType::kF64);
  for (int64_t i = 0; i < i32.numel(); ++i) out.data<double>()[i] = i32.data<int32_t>()[i];
  return out;
}

class CudaRouting : public CudaTest {};

// ---- Top-K --------------------------------------------------------------------------------------

TEST_F(CudaRouting, TopKSelectsLikeTheCpuIncludingTies) {
  SCOPED_TRACE(seed());
  const int64_t n = 300, m = 16;
  for (DType dtype : kDTypes) {
    for (bool ties : {false, true}) {
      // With ties, scores take 4 values only: most rows have equal scores competing for the
      // last places, and the lower index must win as on the CPU.
      Tensor scores = Uniform({n, m}, rng(), -2.0, 2.0);
      if (ties) {
        for (int64_t i = 0; i < scores.numel(); ++i) {
          scores.data<double>()[i] = std::floor(scores.data<double>()[i]);
        }
      }
      scores = Representable(scores, dtype);
      const Tensor scores_dev = Upload(scores, dtype);
      for (int64_t k : {1, 2, 4, 16}) {
        const std::string what = std::string("TopK ") + std::string(DTypeName(dtype)) +
                                 " k=" + std::to_string(k) + (ties ? " ties" : "");
        Tensor values_ref = Tensor::Empty({n, k}, DType::kF64);
        Tensor index_ref = Tensor::Empty({n, k}, DType::kI32);
        ops::TopK(scores, k, values_ref, index_ref);
        Tensor values = Poisoned({n, k}, dtype), index = Poisoned({n, k}, DType::kI32);
        ops::TopK(scores_dev, k, values, index);
        ExpectEqual(what + " values", values, values_ref);
        ExpectEqual(what + " indices", index, IndexAsF64(index_ref));

        const Tensor dvalues = Representable(Uniform({n, k}, rng()), dtype);
        const Tensor dscores_start = Representable(Uniform({n, m}, rng()), dtype);
        Tensor dscores_ref = CloneHost(dscores_start);
        ops::TopKBackward(dvalues, index_ref, dscores_ref);
        Tensor dscores = Upload(dscores_start, dtype);
        ops::TopKBackward(Upload(dvalues, dtype), UploadIndex(index_ref), dscores);
        ExpectClose(what + " backward", dtype, dscores, dscores_ref, kPointwise);
      }
    }
  }
}

// ---- Grouped L2 norm and the fused AoE gate
// -------------------------------------------------------

TEST_F(CudaRouting, GroupedL2NormMatchesCpu) {
  SCOPED_TRACE(seed());
  const int64_t n = 300, groups = 8, width = 40;
  for (DType dtype : kDTypes) {
    const Tensor c = Representable(Uniform({n, groups * width}, rng()), dtype);
    Tensor norms_ref = Tensor::Empty({n, groups}, DType::kF64);
    ops::GroupedL2Norm(c, width, norms_ref);
    const Tensor c_dev = Upload(c, dtype);
    Tensor norms = Poisoned({n, groups}, dtype);
    ops::GroupedL2Norm(c_dev, width, norms);
    // f64 accumulation, one rounding to f32: ≈ 6e-8.
    ExpectClose("GroupedL2Norm", dtype, norms, norms_ref, kPointwise);

    const Tensor norms_saved = Representable(norms_ref, dtype);
    const Tensor dnorms = Representable(Uniform({n, groups}, rng()), dtype);
    const Tensor dc_start = Representable(Uniform({n, groups * width}, rng()), dtype);
    Tensor dc_ref = CloneHost(dc_start);
    ops::GroupedL2NormBackward(dnorms, c, norms_saved, width, dc_ref);
    Tensor dc = Upload(dc_start, dtype);
    ops::GroupedL2NormBackward(Upload(dnorms, dtype), c_dev, Upload(norms_saved, dtype), width, dc);
    ExpectClose("GroupedL2NormBackward", dtype, dc, dc_ref, kPointwise);
  }
}

TEST_F(CudaRouting, AoeGateEqualsTheComposition) {
  SCOPED_TRACE(seed());
  const int64_t n = 300, groups = 8, width = 40, k = 2;
  for (DType dtype : kDTypes) {
    const std::string at = std::string(" ") + std::string(DTypeName(dtype));
    const Tensor c = Representable(Uniform({n, groups * width}, rng()), dtype);
    const Tensor c_dev = Upload(c, dtype);
    Tensor norms = Poisoned({n, groups}, dtype), values = Poisoned({n, k}, dtype);
    Tensor index = Poisoned({n, k}, DType::kI32), weights = Poisoned({n, k}, dtype);
    ops::AoeGate(c_dev, width, k, norms, values, index, weights);

    // 1. Against the same three ops on the GPU: one kernel or three, the same norms (the same f64
    //    sums in the same lanes), hence the same selection, bit for bit.
    Tensor norms3 = Poisoned({n, groups}, dtype), values3 = Poisoned({n, k}, dtype);
    Tensor index3 = Poisoned({n, k}, DType::kI32), weights3 = Poisoned({n, k}, dtype);
    ops::GroupedL2Norm(c_dev, width, norms3);
    ops::TopK(norms3, k, values3, index3);
    ops::RowSoftmaxForward(values3, weights3);
    ExpectEqual("AoeGate norms vs GroupedL2Norm" + at, norms, Download(norms3));
    ExpectEqual("AoeGate values vs TopK" + at, values, Download(values3));
    ExpectEqual("AoeGate indices vs TopK" + at, index, Download(index3));
    // The softmax over k values sums in another order than the warp kernel: a few ulps.
    ExpectClose("AoeGate weights vs RowSoftmax" + at, dtype, weights, Download(weights3),
                kPointwise);

    // 2. Against the CPU: f64 norms rounded to the dtype the GPU stores, then the CPU's top-K
    //    and softmax on those.
    Tensor norms_ref = Tensor::Empty({n, groups}, DType::kF64);
    ops::GroupedL2Norm(c, width, norms_ref);
    const Tensor norms_rounded = Representable(norms_ref, dtype);
    Tensor values_ref = Tensor::Empty({n, k}, DType::kF64);
    Tensor index_ref = Tensor::Empty({n, k}, DType::kI32);
    ops::TopK(norms_rounded, k, values_ref, index_ref);
    Tensor weights_ref = Tensor::Empty({n, k}, DType::kF64);
    ops::RowSoftmaxForward(values_ref, weights_ref);
    ExpectClose("AoeGate norms vs CPU" + at, dtype, norms, norms_ref, kPointwise);
    ExpectEqual("AoeGate indices vs CPU" + at, index, IndexAsF64(index_ref));
    ExpectClose("AoeGate weights vs CPU" + at, dtype, weights, weights_ref, kRowReduce);
  }
}

// ---- Expert layout, permute, gather, combine
// --------------------------------------------------------

// Distinct experts per token (as top-K gives), uniformly random.
Tensor RandomExpertIndex(std::mt19937_64& rng, int64_t n, int64_t k, int64_t experts) {
  Tensor index = Tensor::Empty({n, k}, DType::kI32);
  std::vector<int32_t> all(experts);
  std::iota(all.begin(), all.end(), 0);
  for (int64_t t = 0; t < n; ++t) {
    std::shuffle(all.begin(), all.end(), rng);
    for (int64_t j = 0; j < k; ++j) index.data<int32_t>()[t * k + j] = all[j];
  }
  return index;
}

TEST_F(CudaRouting, ExpertLayoutAndPermutationsMatchCpu) {
  SCOPED_TRACE(seed());
  const int64_t n = 100, k = 2, experts = 8, d = 48, r = 24, pairs = n * k;
  const Tensor expert_index = RandomExpertIndex(rng(), n, k, experts);
  const Tensor expert_index_dev = UploadIndex(expert_index);
  const ops::ExpertLayout layout_ref = ops::BuildExpertLayout(expert_index, experts);
  const ops::ExpertLayout layout = ops::BuildExpertLayout(expert_index_dev, experts);
  EXPECT_EQ(layout.counts, layout_ref.counts);
  EXPECT_EQ(layout.offsets, layout_ref.offsets);
  ExpectEqual("BuildExpertLayout position", layout.position, IndexAsF64(layout_ref.position));
  const Tensor& position = layout_ref.position;
  const Tensor& position_dev = layout.position;

  for (DType dtype : kDTypes) {
    const std::string at = std::string(" ") + std::string(DTypeName(dtype));
    // PermuteRows and GatherExpertSlices copy elements: exact.
    const Tensor x = Representable(Uniform({n, d}, rng()), dtype);
    Tensor grouped_ref = Tensor::Empty({pairs, d}, DType::kF64);
    ops::PermuteRows(x, position, grouped_ref);
    Tensor grouped = Poisoned({pairs, d}, dtype);
    ops::PermuteRows(Upload(x, dtype), position_dev, grouped);
    ExpectEqual("PermuteRows" + at, grouped, grouped_ref);

    const Tensor c = Representable(Uniform({n, experts * r}, rng()), dtype);
    Tensor slices_ref = Tensor::Empty({pairs, r}, DType::kF64);
    ops::GatherExpertSlices(c, expert_index, position, slices_ref);
    Tensor slices = Poisoned({pairs, r}, dtype);
    ops::GatherExpertSlices(Upload(c, dtype), expert_index_dev, position_dev, slices);
    ExpectEqual("GatherExpertSlices" + at, slices, slices_ref);

    // The backwards add the K rows of a token in order of j.
    const Tensor dgrouped = Representable(Uniform({pairs, d}, rng()), dtype);
    const Tensor dx_start = Representable(Uniform({n, d}, rng()), dtype);
    Tensor dx = Upload(dx_start, dtype);
    ops::PermuteRowsBackward(Upload(dgrouped, dtype), position_dev, dx);
    const Tensor dslices = Representable(Uniform({pairs, r}, rng()), dtype);
    const Tensor dc_start = Representable(Uniform({n, experts * r}, rng()), dtype);
    Tensor dc = Upload(dc_start, dtype);
    ops::GatherExpertSlicesBackward(Upload(dslices, dtype), expert_index_dev, position_dev, dc);
    if (dtype == DType::kF32) {
      Tensor dx_cpu = HostF32(dx_start), dc_cpu = HostF32(dc_start);
      ops::PermuteRowsBackward(HostF32(dgrouped), position, dx_cpu);
      ops::GatherExpertSlicesBackward(HostF32(dslices), expert_index, position, dc_cpu);
      ExpectEqual("PermuteRowsBackward f32 bits", dx, Download(dx_cpu));
      ExpectEqual("GatherExpertSlicesBackward f32 bits", dc, Download(dc_cpu));
    } else {
      Tensor dx_ref = CloneHost(dx_start), dc_ref = CloneHost(dc_start);
      ops::PermuteRowsBackward(dgrouped, position, dx_ref);
      ops::GatherExpertSlicesBackward(dslices, expert_index, position, dc_ref);
      ExpectClose("PermuteRowsBackward", dtype, dx, dx_ref, 0.0);
      ExpectClose("GatherExpertSlicesBackward", dtype, dc, dc_ref, 0.0);
    }

    // Combine: y = Σ_j w_j · expert_out[position]; backward to both inputs.
    const Tensor expert_out = Representable(Uniform({pairs, d}, rng()), dtype);
    const Tensor weights = Representable(Uniform({n, k}, rng(), 0.0, 1.0), dtype);
    Tensor y_ref = Tensor::Empty({n, d}, DType::kF64);
    ops::CombineRows(expert_out, position, weights, y_ref);
    const Tensor expert_out_dev = Upload(expert_out, dtype), weights_dev = Upload(weights, dtype);
    Tensor y = Poisoned({n, d}, dtype);
    ops::CombineRows(expert_out_dev, position_dev, weights_dev, y);
    ExpectClose("CombineRows" + at, dtype, y, y_ref, kPointwise);

    const Tensor dy = Representable(Uniform({n, d}, rng()), dtype);
    const Tensor dout_start = Representable(Uniform({pairs, d}, rng()), dtype);
    const Tensor dw_start = Representable(Uniform({n, k}, rng()), dtype);
    Tensor dout_ref = CloneHost(dout_start), dw_ref = CloneHost(dw_start);
    ops::CombineRowsBackward(dy, expert_out, position, weights, dout_ref, dw_ref);
    Tensor dout = Upload(dout_start, dtype), dw = Upload(dw_start, dtype);
    ops::CombineRowsBackward(Upload(dy, dtype), expert_out_dev, position_dev, weights_dev, dout,
                             dw);
    ExpectClose("CombineRowsBackward d_expert_out" + at, dtype, dout, dout_ref, kPointwise);
    ExpectClose("CombineRowsBackward dweights" + at, dtype, dw, dw_ref, kRowReduce);
  }
}

}  // namespace
}  // namespace aoetron::cudatest
