// MpiCommunicator: the Communicator contract (parallel/communicator.h) over an MPI communicator,
// for CPU tensors.
//
// How each collective maps onto MPI:
//  - AllReduce: per segment (CollectiveOptions::reduction_segment_bytes), MPI_Ialltoallv gives
//    each rank one block from every peer, the rank combines them in rank order
//    (rank_order_reduction.h), and MPI_Iallgatherv spreads the reduced blocks. StartAllReduce
//    runs these steps as a small state machine; AllReduce is Start + Wait. MPI needs every rank
//    to start a communicator's collectives in the same order, and when a step completes depends
//    on timing, so started AllReduces run one at a time from a FIFO queue (the head's next step
//    starts only when its previous one completes; the next entry starts when the head is done),
//    and every blocking call first completes the queue. Test() on any entry advances the queue. The
//    traffic is that of a reduce-scatter + all-gather, MPI's own reduction order never matters, and
//    the result is bitwise the same on every rank. MPI_Allreduce is not used: its reduction order
//    is left to the implementation (Open MPI's tuned component picks algorithms by message size and
//    group size).
//  - ReduceScatter: the first half of the above (MPI_Alltoall + rank-order reduction).
//  - AllGather, AllToAllV, Broadcast, Barrier: MPI_Allgather (MPI_IN_PLACE when the input is
//    already the output's own block), MPI_Alltoallv in units of one row, MPI_Bcast, MPI_Barrier.
//    Elements move as raw 2/4/8-byte words, so every dtype moves and nothing is converted.
// Limits: one rank's block (AllGather), a whole AllToAllV in rows, and a row's width must each
// stay below 2^31 (MPI's int counts); exceeding one ends the job with a message.
// Every MPI return code is checked (the communicator is set to MPI_ERRORS_RETURN). On failure:
//     rank R (group G): MPI_Xxx failed: <MPI error string>
// then MPI_Abort(MPI_COMM_WORLD, 1). Misuse is reported the same way with the collective's name:
//     rank R (group G): AllToAllV failed: send_rows sums to 7 but send has 8 rows
#pragma once

#include <mpi.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "parallel/collective_options.h"
#include "parallel/communicator.h"

namespace aoetron::parallel {

class MpiCommunicator final : public Communicator {
 public:
  // Wraps `comm` and sets MPI_ERRORS_RETURN on it. With `take_ownership`, `comm` is freed when
  // this object is destroyed (skipped if MPI is already finalized). MPI must be initialized.
  MpiCommunicator(MPI_Comm comm, bool take_ownership, std::string name, CollectiveOptions options);
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }
  int world_rank() const override { return world_rank_; }

  void AllReduce(Tensor tensor, ReduceOp op) override;
  void ReduceScatter(const Tensor& input, Tensor output) override;
  void AllGather(const Tensor& input, Tensor output) override;
  void AllToAllV(const Tensor& send, std::span<const int64_t> send_rows, Tensor recv,
                 std::span<const int64_t> recv_rows) override;
  using Communicator::AllToAllV;
  void Broadcast(Tensor tensor, int root) override;
  void Barrier() override;
  std::unique_ptr<PendingCollective> StartAllReduce(Tensor tensor, ReduceOp op) override;
  std::unique_ptr<Communicator> Split(int color, int key, std::string name) override;

  // The underlying MPI communicator, for bootstrapping other backends (NCCL's unique id).
  MPI_Comm comm() const { return comm_; }
  const CollectiveOptions& options() const { return options_; }

 private:
  class PendingAllReduce;

  // Ends the job with "rank R (group G): <call> failed: <cause>".
  [[noreturn]] void Fail(const std::string& call, const std::string& cause) const;
  // Fails with MPI's error string unless rc is MPI_SUCCESS.
  void CheckMpi(int rc, const char* mpi_call) const;
  // Fails unless `tensor` is defined, on the CPU and (if `reduction`) of a reducible dtype.
  void CheckTensor(const std::string& call, const Tensor& tensor, const char* what,
                   bool reduction) const;
  // With options_.check_agreement: fails unless every rank passes the same fingerprint.
  void CheckAgreement(const std::string& call, uint64_t fingerprint);
  // "<what> on group G (collective #N of the group)": the watchdog's description of a call.
  // Comparing N across ranks' messages shows which rank fell behind.
  std::string Describe(const std::string& what);

  MPI_Comm comm_;
  bool owns_comm_;
  std::string name_;
  CollectiveOptions options_;
  int rank_ = 0;
  int size_ = 1;
  int world_rank_ = 0;
  uint64_t collectives_called_ = 0;
  std::vector<char> send_scratch_;
  std::vector<char> recv_scratch_;
  // Receive buffers of finished started AllReduces, reused by the next ones (no fresh pages per
  // call).
  std::vector<std::vector<char>> spare_reduction_buffers_;
  // Started AllReduces not yet complete, in start order; only the front one has MPI work in
  // flight.
  std::deque<PendingAllReduce*> reduction_queue_;
  // Advances the queue: with `block`, until `until` is complete (and everything before it);
  // without, as far as it goes without waiting.
  void AdvanceQueue(const PendingAllReduce* until, bool block);
  // Completes every started AllReduce (before any other collective starts).
  void DrainQueue() { AdvanceQueue(nullptr, /*block=*/true); }
};

}  // namespace aoetron::parallel
