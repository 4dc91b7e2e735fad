#include "parallel/communicator.h"

#include <numeric>

#include "absl/strings/str_cat.h"
#include "parallel/abort.h"

namespace aoetron::parallel {

const char* ReduceOpName(ReduceOp op) { return op == ReduceOp::kSum ? "sum" : "max"; }

Tensor Communicator::AllToAllV(const Tensor& send, std::span<const int64_t> send_rows,
                               std::span<const int64_t> recv_rows) {
  if (!send.defined() || send.rank() < 1) {
    AbortAllWithMessage(absl::StrCat("rank ", world_rank(), " (group ", name(),
                                     "): AllToAllV failed: send must have at least one dimension"));
  }
  Shape shape = send.shape();
  shape[0] = std::accumulate(recv_rows.begin(), recv_rows.end(), int64_t{0});
  Tensor recv = Tensor::Empty(std::move(shape), send.dtype());
  AllToAllV(send, send_rows, recv, recv_rows);
  return recv;
}

namespace {
class CompletedCollective final : public PendingCollective {
 public:
  bool Test() override { return true; }
  void Wait() override {}
};
}  // namespace

std::unique_ptr<PendingCollective> Communicator::StartAllReduce(Tensor tensor, ReduceOp op) {
  AllReduce(tensor, op);
  return std::make_unique<CompletedCollective>();
}

std::vector<int64_t> Communicator::ExchangeCounts(std::span<const int64_t> counts_for_peer) {
  if (static_cast<int>(counts_for_peer.size()) != size()) {
    AbortAllWithMessage(absl::StrCat("rank ", world_rank(), " (group ", name(),
                                     "): ExchangeCounts failed: got ", counts_for_peer.size(),
                                     " counts for a group of ", size()));
  }
  std::vector<int64_t> send(counts_for_peer.begin(), counts_for_peer.end());
  std::vector<int64_t> received(size());
  const std::vector<int64_t> one_row_each(size(), 1);
  AllToAllV(Tensor::Wrap(send.data(), {size()}, DType::kI64), one_row_each,
            Tensor::Wrap(received.data(), {size()}, DType::kI64), one_row_each);
  return received;
}

}  // namespace aoetron::parallel
