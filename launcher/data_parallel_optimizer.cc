#include "launcher/data_parallel_optimizer.h"

#include <cmath>

#include "core/device_transfer.h"
#include "core/ops/elementwise.h"
#include "launcher/adamw_optimizer.h"
#include "parallel/gradient_sync.h"

namespace aoetron {
namespace {

class ReplicatedOptimizer final : public DataParallelOptimizer {
 public:
  ReplicatedOptimizer(ParameterSet& params, std::vector<parallel::FlatSegment> segments,
                      parallel::ProcessGroups& groups, int64_t bucket_bytes,
                      const AdamWHyperParams& hp)
      : params_(&params),
        adamw_(&params, hp),
        sync_(params.flat_grads(), std::move(segments), groups, bucket_bytes) {}

  void BeginStep(bool check_finite) override { sync_.StartStep(check_finite); }
  GradientsReadyHook LastMicroBatchHook() override {
    return [this](int first) { sync_.GradientsReadyFrom(first); };
  }
  void FinishBackward() override { sync_.Finish(); }
  // Checked per bucket before its all-reduce started.
  bool LocalGradientsFinite() override { return sync_.local_gradients_finite(); }
  void ReduceGradients() override {}  // all-reduced during backward
  double LocalSquaredNorm() const override { return sync_.LocalSquaredNorm(); }
  void ScaleGradients(double factor) override { ops::Scale(params_->flat_grads(), factor); }
  void Step(double lr) override {
    adamw_.Step(lr);
    params_->RefreshComputeCopy();
  }
  int64_t steps_taken() const override { return adamw_.steps_taken(); }
  void GatherState(Tensor flat_m, Tensor flat_v) override {
    CopyAcrossDevices(adamw_.flat_m(), flat_m);
    CopyAcrossDevices(adamw_.flat_v(), flat_v);
  }
  void LoadState(const Tensor& flat_m, const Tensor& flat_v, int64_t steps_taken) override {
    CopyAcrossDevices(flat_m, adamw_.flat_m());
    CopyAcrossDevices(flat_v, adamw_.flat_v());
    adamw_.set_steps_taken(steps_taken);
  }

 private:
  ParameterSet* params_;
  AdamWOptimizer adamw_;
  parallel::GradientSync sync_;
};

class Zero1Optimizer final : public DataParallelOptimizer {
 public:
  Zero1Optimizer(ParameterSet& params, std::vector<parallel::FlatSegment> segments,
                 parallel::ProcessGroups& groups, int64_t bucket_bytes, const AdamWHyperParams& hp)
      : params_(&params),
        zero_(params.flat_masters(), params.flat_grads(), std::move(segments), groups, bucket_bytes,
              hp) {}

  void BeginStep(bool) override {}
  GradientsReadyHook LastMicroBatchHook() override { return nullptr; }
  void FinishBackward() override {}
  // One pass over the unreduced gradients (~1.5% of a bench step).
  bool LocalGradientsFinite() override {
    return std::isfinite(ops::SumSquares(params_->flat_grads()));
  }
  void ReduceGradients() override { zero_.ReduceScatterGradients(); }
  double LocalSquaredNorm() const override { return zero_.LocalSquaredNorm(); }
  void ScaleGradients(double factor) override { zero_.ScaleGradients(factor); }
  void Step(double lr) override {
    zero_.Step(lr);
    params_->RefreshComputeCopy();
  }
  int64_t steps_taken() const override { return zero_.steps_taken(); }
  void GatherState(Tensor flat_m, Tensor flat_v) override {
    const Device device = params_->flat_masters().device();
    if (flat_m.device() == device && flat_v.device() == device) {
      zero_.GatherState(flat_m, flat_v);
      return;
    }
    Tensor m = Tensor::Empty(flat_m.shape(), DType::kF32, device);
    Tensor v = Tensor::Empty(flat_v.shape(), DType::kF32, device);
    zero_.GatherState(m, v);
    CopyAcrossDevices(m, flat_m);
    CopyAcrossDevices(v, flat_v);
  }
  void LoadState(const Tensor& flat_m, const Tensor& flat_v, int64_t steps_taken) override {
    const Device device = params_->flat_masters().device();
    zero_.LoadState(CopyToDevice(flat_m, device), CopyToDevice(flat_v, device), steps_taken);
  }
  parallel::DistributedOptimizer* zero1() override { return &zero_; }

 private:
  ParameterSet* params_;
  parallel::DistributedOptimizer zero_;
};

}  // namespace

std::unique_ptr<DataParallelOptimizer> MakeDataParallelOptimizer(
    bool zero1, ParameterSet& params, std::vector<parallel::FlatSegment> segments,
    parallel::ProcessGroups& groups, int64_t bucket_bytes, const AdamWHyperParams& hp) {
  if (zero1) {
    return std::make_unique<Zero1Optimizer>(params, std::move(segments), groups, bucket_bytes, hp);
  }
  return std::make_unique<ReplicatedOptimizer>(params, std::move(segments), groups, bucket_bytes,
                                               hp);
}

}  // namespace aoetron
