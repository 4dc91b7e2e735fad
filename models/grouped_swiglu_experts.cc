#include "models/grouped_swiglu_experts.h"

#include "core/ops/elementwise.h"
#include "core/ops/gemm.h"
#include "core/ops/swiglu.h"
#include "parallel/tensor_parallel.h"

namespace aoetron {

GroupedSwiGluExperts::GroupedSwiGluExperts(ParameterSet* params,
                                           parallel::Communicator& tensor_parallel,
                                           const std::vector<std::string>& expert_prefixes,
                                           const std::string& gate_name, int64_t d_model,
                                           int64_t gate_in, int64_t width, double init_std,
                                           double output_std,
                                           const std::vector<Sharding>& shardings)
    : params_(params),
      tensor_parallel_(&tensor_parallel),
      d_model_(d_model),
      gate_in_(gate_in),
      width_(width) {
  AOETRON_CHECK_EQ(expert_prefixes.size(), shardings.size());
  const int tp = tensor_parallel.size();
  AOETRON_CHECK(tp == params->tp_size() && tensor_parallel.rank() == params->tp_rank())
      << "the tensor-parallel group (rank " << tensor_parallel.rank() << " of " << tp
      << ") and the parameter set (rank " << params->tp_rank() << " of " << params->tp_size()
      << ") disagree";
  AOETRON_CHECK(width % tp == 0) << "expert width " << width
                                 << " is not divisible by the tensor-parallel size " << tp;
  local_width_ = width / tp;
  for (size_t e = 0; e < expert_prefixes.size(); ++e) {
    const std::string& p = expert_prefixes[e];
    auto add = [&](const std::string& name, Shape shape, int split_dim, double std) {
      Parameter param;
      param.name = p + "." + name;
      param.global_shape = std::move(shape);
      param.sharding = Sharding::Expert(shardings[e].expert, split_dim);
      param.init_std = std;
      return params->Add(std::move(param));
    };
    w_gate_.push_back(add(gate_name, {gate_in, width}, /*column-parallel*/ 1, init_std));
    w_p_.push_back(add("w_p", {d_model, width}, /*column-parallel*/ 1, init_std));
    w_o_.push_back(add("w_o", {width, d_model}, /*row-parallel*/ 0, output_std));
  }
}

// On one tp rank, with F_l = F/tp: A, U, H are [M, F_l]; y = Σ_tp H W_o[shard, :].
void GroupedSwiGluExperts::Forward(const Tensor& x, const Tensor& gate_in,
                                   const std::vector<int64_t>& offsets, Tensor& y,
                                   ActivationArena& arena) {
  const int64_t rows = x.dim(0);
  AOETRON_CHECK_EQ(static_cast<int64_t>(offsets.size()), num_experts() + 1);
  AOETRON_CHECK_EQ(offsets.back(), rows);
  x_ = x;
  gate_input_ = gate_in;
  offsets_ = offsets;
  a_ = arena.Allocate({rows, local_width_}, params_->dtype());
  u_ = arena.Allocate({rows, local_width_}, params_->dtype());
  h_ = arena.Allocate({rows, local_width_}, params_->dtype());
  for (int64_t e = 0; e < num_experts(); ++e) {
    const int64_t begin = offsets[e], end = offsets[e + 1];
    if (begin == end) continue;
    Tensor a = a_.Rows(begin, end), u = u_.Rows(begin, end);
    ops::Gemm(gate_in.Rows(begin, end), false, (*params_)[w_gate_[e]].value, false, a);
    ops::Gemm(x.Rows(begin, end), false, (*params_)[w_p_[e]].value, false, u);
  }
  // One elementwise pass over all experts' rows at once.
  ops::SwiGluForward(a_, u_, h_);
  for (int64_t e = 0; e < num_experts(); ++e) {
    const int64_t begin = offsets[e], end = offsets[e + 1];
    if (begin == end) continue;
    Tensor y_e = y.Rows(begin, end);
    ops::Gemm(h_.Rows(begin, end), false, (*params_)[w_o_[e]].value, false, y_e);
  }
  parallel::ReduceFromTensorParallelRegionForward(*tensor_parallel_, y);
}

void GroupedSwiGluExperts::Backward(const Tensor& dy, Tensor& dx, Tensor& dgate_in,
                                    ActivationArena& arena) {
  const int64_t rows = x_.dim(0);
  Tensor dh = arena.Allocate({rows, local_width_}, params_->dtype());
  for (int64_t e = 0; e < num_experts(); ++e) {
    const int64_t begin = offsets_[e], end = offsets_[e + 1];
    if (begin == end) continue;
    Parameter& w_o = (*params_)[w_o_[e]];
    Tensor dh_e = dh.Rows(begin, end);
    ops::Gemm(dy.Rows(begin, end), false, w_o.value, true, dh_e);
    ops::Gemm(h_.Rows(begin, end), true, dy.Rows(begin, end), false, w_o.grad, 1.0f, 1.0f);
  }
  // SwiGLU's backward accumulates, so dA and dU start from zero.
  Tensor da = arena.Allocate({rows, local_width_}, params_->dtype());
  Tensor du = arena.Allocate({rows, local_width_}, params_->dtype());
  ops::Fill(da, 0.0);
  ops::Fill(du, 0.0);
  ops::SwiGluBackward(dh, a_, u_, da, du);

  // With tp > 1 the input-gradient products of this rank's shard are partial sums: they go to
  // zeroed scratch (one buffer, so one all-reduce carries both), are summed over tp, then added
  // to dx and dgate_in. With tp = 1 they accumulate in place, as they always did.
  const bool split = tensor_parallel_->size() > 1;
  const bool gate_is_x = dgate_in.IsSameView(dx);
  Tensor dx_new = dx, dgate_new = dgate_in, partials;
  if (split) {
    const int64_t gate_values = gate_is_x ? 0 : dgate_in.numel();
    partials = arena.Allocate({dx.numel() + gate_values}, params_->dtype());
    ops::Fill(partials, 0.0);
    dx_new = partials.Rows(0, dx.numel()).Reshape(dx.shape());
    dgate_new =
        gate_is_x ? dx_new : partials.Rows(dx.numel(), partials.numel()).Reshape(dgate_in.shape());
  }
  for (int64_t e = 0; e < num_experts(); ++e) {
    const int64_t begin = offsets_[e], end = offsets_[e + 1];
    if (begin == end) continue;
    Parameter& w_gate = (*params_)[w_gate_[e]];
    Parameter& w_p = (*params_)[w_p_[e]];
    const Tensor da_e = da.Rows(begin, end), du_e = du.Rows(begin, end);
    ops::Gemm(gate_input_.Rows(begin, end), true, da_e, false, w_gate.grad, 1.0f, 1.0f);
    ops::Gemm(x_.Rows(begin, end), true, du_e, false, w_p.grad, 1.0f, 1.0f);
    Tensor dgate_e = dgate_new.Rows(begin, end);
    ops::Gemm(da_e, false, w_gate.value, true, dgate_e, 1.0f, 1.0f);
    Tensor dx_e = dx_new.Rows(begin, end);
    ops::Gemm(du_e, false, w_p.value, true, dx_e, 1.0f, 1.0f);
  }
  if (!split) return;
  parallel::CopyToTensorParallelRegionBackward(*tensor_parallel_, partials);
  ops::AddInto(dx_new, dx);
  if (!gate_is_x) ops::AddInto(dgate_new, dgate_in);
}

}  // namespace aoetron
