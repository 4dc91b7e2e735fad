// NcclCommunicator: the Communicator contract (parallel/communicator.h) over NCCL, for tensors on
// this process's GPU. Built when NCCL is found next to the CUDA toolkit (AOETRON_HAVE_NCCL).
//
// Bootstrap. A group's NCCL communicator is made from the same group's CPU communicator (the MPI
// one): its rank 0 draws the NCCL unique id and broadcasts it over that communicator, then every
// rank joins with ncclCommInitRank on its device. One device per process: the device is the
// current one (SetCudaDevice(local_rank) at start-up, see DeviceForLocalRank). Split splits the
// CPU communicator and bootstraps a new NCCL communicator from the part.
//
// Streams. Collectives run on a communication stream, so they can overlap compute that does not
// depend on them; every NCCL communicator of the process shares one such stream per device, so
// collectives of different groups (dp and edp buckets in flight together, tp and ep inside
// backward) run in program order — the same on every rank, as NCCL requires of concurrent
// communicators. StartAllReduce (GradientSync's buckets) enqueues the same work
// but joins the compute stream only where the result is consumed: the handle's Wait (or Test
// seeing it done) makes the compute stream wait for it, without blocking the host.
// Time. seconds_in_collectives() is device time: CUDA events bracket each collective on the
// communication stream (what the transfer took, not the enqueue), summed when asked (it waits
// for the recorded collectives to finish); Barrier's host time is added. Each call (1) records an
// event on the compute stream (core/cuda/device_context.h) and makes the communication stream wait
// for it, so the collective sees every value the compute stream wrote before the call; (2) enqueues
// the NCCL work; (3) records an event on the communication stream and makes the compute stream wait
// for it, so every op issued after the call sees the results. The call returns once the work is
// enqueued: "complete" in the contract's sense is in stream order — the next op on the device,
// and any copy to the host (which synchronises), sees the final values.
//
// How each collective maps onto NCCL (determinism as in the contract, bitwise like the MPI
// backend for the same inputs: both reduce with the same rank-order arithmetic):
//  - AllReduce: the tensor is cut into p blocks; grouped ncclSend/ncclRecv give each rank every
//    peer's copy of its block; a kernel combines them in rank order
//    (core/cuda/rank_order_reduce.h); grouped send/recv spread the reduced blocks. The traffic of a
//    reduce-scatter + all-gather; NCCL's own reduction order never matters. (ncclAllReduce is not
//    used: its order depends on the algorithm and topology NCCL picks.)
//  - ReduceScatter: the first half of the above.
//  - AllGather: ncclAllGather (a pure copy, deterministic); in place when the input is the
//    output's own block.
//  - AllToAllV: grouped ncclSend/ncclRecv of each peer's rows; this rank's own rows are a device
//    copy.
//  - Broadcast: ncclBroadcast in place. Barrier: the CPU communicator's barrier.
// Elements move as bytes (ncclUint8), so every dtype moves; reductions take f32, f64, bf16
// (summed in f32, rounded once), i32, i64.
//
// Errors. A misuse (wrong device, dtype, shape) or a failed NCCL/CUDA call ends the job through
// AbortAll: "rank R (group G): <call> failed: <cause>".
// Not yet: hang detection inside NCCL (a stuck collective blocks at the next synchronisation,
// outside the watchdog's deadline) — see docs/cuda.md.
// Threads: one thread at a time per communicator (as the contract says).
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <memory>
#include <string>
#include <vector>

#include "parallel/communicator.h"

namespace aoetron::parallel {

// The CUDA device a process should use: its local rank, modulo the visible devices. CHECKs that
// a device is visible.
int DeviceForLocalRank(int local_rank);

class NcclScratch;  // device scratch of one collective (nccl_communicator.cc)

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `bootstrap` (a CPU communicator of the group, e.g. MpiCommunicator): builds
  // the group's NCCL communicator on the current CUDA device. `bootstrap` must outlive the
  // result unless `owned_bootstrap` is it (Split passes ownership).
  static std::unique_ptr<NcclCommunicator> Create(Communicator& bootstrap);
  ~NcclCommunicator() override;

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
  std::unique_ptr<PendingCollective> StartAllReduce(Tensor tensor, ReduceOp op) override;
  double seconds_in_collectives() const override;
  void Barrier() override;
  std::unique_ptr<Communicator> Split(int color, int key, std::string name) override;

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }

 private:
  NcclCommunicator(Communicator& bootstrap, std::unique_ptr<Communicator> owned_bootstrap);
  [[noreturn]] void Fail(const std::string& call, const std::string& cause) const;
  void CheckNccl(ncclResult_t result, const char* nccl_call) const;
  void CheckCuda(cudaError_t result, const char* cuda_call) const;
  // Fails unless `tensor` is defined, on this communicator's device and (if `reduction`) of a
  // reducible dtype.
  void CheckTensor(const std::string& call, const Tensor& tensor, const char* what,
                   bool reduction) const;
  // Stage (1) and (3) of the file comment; (1) also starts the collective's timing and (3) ends
  // it (EndTiming alone for a started collective).
  void CommunicationWaitsForCompute();
  void ComputeWaitsForCommunication();
  void EndTiming();
  // Steps 1–3 of AllReduce on the communication stream, without the compute stream's wait; the
  // scratch must live until the compute stream has waited. Null when there is nothing to do.
  std::unique_ptr<NcclScratch> EnqueueAllReduce(Tensor tensor, ReduceOp op);
  struct TimingEvents {
    cudaEvent_t start = nullptr, stop = nullptr;
  };
  TimingEvents TakeTimingEvents();
  // Grouped exchange of byte ranges: send[r] goes to peer r, recv[r] comes from peer r; this
  // rank's own pair is a device copy. Lengths in bytes; zero-length pairs are skipped.
  struct Range {
    const char* send = nullptr;
    size_t send_bytes = 0;
    char* recv = nullptr;
    size_t recv_bytes = 0;
  };
  void Exchange(const std::vector<Range>& ranges, const char* call);

  std::unique_ptr<Communicator> owned_bootstrap_;
  Communicator* bootstrap_;
  std::string name_;
  int rank_ = 0;
  int size_ = 1;
  int world_rank_ = 0;
  int device_ = 0;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t compute_done_ = nullptr;
  cudaEvent_t communication_done_ = nullptr;
  // Timing: pairs recorded and not yet read, spare pairs, and the device seconds read so far.
  mutable std::vector<TimingEvents> recorded_, spare_timing_;
  mutable double device_seconds_ = 0.0;
};

}  // namespace aoetron::parallel
