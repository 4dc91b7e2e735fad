#include "parallel/single_process_communicator.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "parallel/abort.h"
#include "parallel/rank_order_reduction.h"

namespace aoetron::parallel {

void SingleProcessCommunicator::Fail(const std::string& call, const std::string& cause) const {
  AbortAllWithMessage(absl::StrCat("rank 0 (group ", name_, "): ", call, " failed: ", cause));
}

void SingleProcessCommunicator::Copy(const std::string& call, const Tensor& from, Tensor to) const {
  if (!from.defined() || !to.defined()) Fail(call, "undefined tensor");
  if (from.dtype() != to.dtype() || from.numel() != to.numel()) {
    Fail(call, absl::StrCat(from.DebugString(), " and ", to.DebugString(),
                            " differ in dtype or element count"));
  }
  const DeviceAccessScope device_buffers;  // a device communicator (core/device_access.h)
  if (from.nbytes() > 0 && from.raw_data() != to.raw_data()) {
    std::memmove(to.raw_data(), from.raw_data(), from.nbytes());
  }
}

void SingleProcessCommunicator::AllReduce(Tensor tensor, ReduceOp op) {
  if (!tensor.defined() || !IsReducible(tensor.dtype())) {
    Fail(absl::StrCat("AllReduce(", ReduceOpName(op), ")"),
         "reductions take a defined f32, f64, i32 or i64 tensor");
  }
}

void SingleProcessCommunicator::ReduceScatter(const Tensor& input, Tensor output) {
  if (!input.defined() || !IsReducible(input.dtype())) {
    Fail("ReduceScatter(sum)", "reductions take a defined f32, f64, i32 or i64 tensor");
  }
  Copy("ReduceScatter(sum)", input, output);
}

void SingleProcessCommunicator::AllGather(const Tensor& input, Tensor output) {
  Copy("AllGather", input, output);
}

void SingleProcessCommunicator::AllToAllV(const Tensor& send, std::span<const int64_t> send_rows,
                                          Tensor recv, std::span<const int64_t> recv_rows) {
  if (send_rows.size() != 1 || recv_rows.size() != 1 || send_rows[0] != recv_rows[0] ||
      !send.defined() || send.rank() < 1 || send_rows[0] != send.dim(0)) {
    Fail("AllToAllV", "a group of one sends all its rows to itself: counts must be {rows}");
  }
  Copy("AllToAllV", send, recv);
}

void SingleProcessCommunicator::Broadcast(Tensor tensor, int root) {
  if (root != 0) Fail("Broadcast", absl::StrCat("root ", root, " is outside the group of 1"));
}

std::unique_ptr<Communicator> SingleProcessCommunicator::Split(int color, int key,
                                                               std::string name) {
  if (color < 0) Fail("Split", absl::StrCat("color ", color, " is negative"));
  return std::make_unique<SingleProcessCommunicator>(std::move(name));
}

}  // namespace aoetron::parallel
