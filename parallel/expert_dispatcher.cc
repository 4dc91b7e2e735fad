#include "parallel/expert_dispatcher.h"

#include "core/check.h"
#include "parallel/all_to_all_dispatcher.h"
#include "parallel/local_expert_dispatcher.h"

namespace aoetron::parallel {

ExpertDispatcher::ExpertDispatcher(int ep_rank, int ep_size, int64_t num_experts, int64_t d_model,
                                   int64_t gate_width)
    : ep_rank_(ep_rank),
      ep_size_(ep_size),
      num_experts_(num_experts),
      d_model_(d_model),
      gate_width_(gate_width) {
  AOETRON_CHECK(num_experts >= 1 && num_experts % ep_size == 0)
      << "ExpertDispatcher: " << num_experts << " experts do not split over the " << ep_size
      << " ranks of the expert-parallel group";
  AOETRON_CHECK(d_model >= 1 && gate_width >= 0)
      << "ExpertDispatcher: d_model " << d_model << ", gate width " << gate_width;
}

ExpertBatch ExpertDispatcher::Dispatch(const Tensor& x, const Tensor& expert_index,
                                       const Tensor& gate_cache,
                                       std::span<const int64_t> keep_limit,
                                       ActivationArena& arena) {
  AOETRON_CHECK(x.rank() == 2 && x.dim(1) == d_model_ && expert_index.rank() == 2 &&
                expert_index.dim(0) == x.dim(0))
      << "ExpertDispatcher::Dispatch: x " << x.DebugString() << ", expert_index "
      << expert_index.DebugString() << " (d_model " << d_model_ << ")";
  AOETRON_CHECK(gate_width_ == 0 ? !gate_cache.defined()
                                 : gate_cache.defined() && gate_cache.dtype() == x.dtype() &&
                                       gate_cache.shape() ==
                                           Shape({x.dim(0), expert_index.dim(1) * gate_width_}))
      << "ExpertDispatcher::Dispatch: gate cache " << gate_cache.DebugString() << " for gate width "
      << gate_width_ << " and " << expert_index.dim(1) << " experts per token";
  x_ = x;
  expert_index_ = expert_index;
  gate_cache_ = gate_cache;
  stats_ = DispatchStats{};
  DispatchStages(keep_limit, arena);
  return batch_;
}

std::unique_ptr<ExpertDispatcher> MakeExpertDispatcher(Communicator& ep, Communicator& ep_host,
                                                       int64_t num_experts, int64_t d_model,
                                                       int64_t gate_width) {
  if (ep.size() == 1) {
    return std::make_unique<LocalExpertDispatcher>(num_experts, d_model, gate_width);
  }
  return std::make_unique<AllToAllExpertDispatcher>(ep, ep_host, num_experts, d_model, gate_width);
}

}  // namespace aoetron::parallel
