// Communicator: the collectives of one process group (tp, dp, ep, ...) on contiguous tensors.
//
// The interface knows no transport: the MPI backend (parallel/mpi/) moves CPU tensors, an NCCL
// backend will move GPU tensors behind the same calls. Models and the trainer see only this.
//
// Contract shared by every collective below:
//  - Collective: every rank of the group must make the same calls, in the same order, with
//    matching arguments (same dtype and element counts where stated). A rank that skips a call,
//    or calls another collective, leaves the others waiting: the collective watchdog
//    (parallel/watchdog.h) ends such a job after its timeout, naming the call and the group.
//  - Blocking: a call returns when this rank's part is complete: outputs hold their final values
//    and inputs may be reused. There is no implied barrier (other ranks may still be inside).
//  - Ownership: tensors are borrowed for the duration of the call; the caller allocates every
//    output (except the AllToAllV overload that returns a new tensor). Tensor is a handle, so
//    outputs are passed by value: `comm.AllReduce(params.flat_grads().Rows(a, b))` writes the
//    caller's elements. Inputs and outputs must not overlap unless a call says so.
//  - Devices and dtypes: the MPI backend takes CPU tensors. Reductions (AllReduce, ReduceScatter)
//    take f32, f64, i32 and i64; moves (AllGather, AllToAllV, Broadcast) take any dtype.
//  - Determinism: reductions are evaluated in rank order. For every element i the result is
//        ((x_0[i] op x_1[i]) op x_2[i]) op ... op x_{p-1}[i]
//    in the tensor's own dtype, where x_r is group rank r's input. It is therefore bitwise the
//    same on every rank, from run to run, and independent of message size or transport, for a
//    fixed group size and fixed inputs. (MPI_Allreduce promises none of this; see docs.)
//    Max propagates NaN: if any rank holds NaN at i, every rank gets NaN.
//  - Errors: there are none to handle. A misuse (wrong shape, dtype, device, root) or a
//    transport failure on any rank prints "rank R (group G): <call> failed: <cause>" and ends
//    the whole job (parallel/abort.h); a call never returns with a partial result. A failure is
//    not recoverable inside one job because the other ranks' state is unknown.
//  - Threads: a Communicator is used by one thread at a time. Different communicators may be
//    used from different threads only if the backend says so (MPI: yes, with
//    MPI_THREAD_MULTIPLE; the context records the level).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "core/timing.h"

namespace aoetron::parallel {

enum class ReduceOp { kSum, kMax };

// A collective started with one of Communicator's Start* calls and not yet known to be complete.
// Until it is, the caller must not read or write the tensor it was started on. Destroying a
// pending collective waits for it.
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  // Advances the collective as far as it can without blocking; true once it is complete (the
  // tensor holds its final values). Cheap enough to call between layers.
  virtual bool Test() = 0;
  // Blocks until the collective is complete (watchdog-guarded like a blocking call).
  virtual void Wait() = 0;
};
const char* ReduceOpName(ReduceOp op);  // "sum", "max"

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  // This process's rank within the group, in [0, size()).
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // The group's name in messages: "world", "tp", "dp", "ep", "edp".
  virtual const std::string& name() const = 0;
  // This process's rank in the world group, for messages.
  virtual int world_rank() const = 0;

  // In place: every rank's `tensor` becomes the element-wise reduction over the group (rank
  // order, see the file comment). Shapes may differ between ranks; element counts may not.
  virtual void AllReduce(Tensor tensor, ReduceOp op) = 0;

  // Sum-reduces `input` over the group and leaves block rank() of the result in `output`.
  // input.numel() == size() * output.numel() on every rank; block r is the flat elements
  // [r·n, (r+1)·n) of input, n = output.numel() — for a row-major [size()·m, ...] input that is
  // the r-th block of m rows. output[j] equals AllReduce(input)[rank()·n + j] bitwise.
  virtual void ReduceScatter(const Tensor& input, Tensor output) = 0;

  // Concatenates every rank's `input` in group-rank order into `output` (on every rank):
  // output.numel() == size() * input.numel(), block r of output (flat, as above) is rank r's
  // input. Equal blocks: input.numel() must be the same on every rank.
  virtual void AllGather(const Tensor& input, Tensor output) = 0;

  // Exchanges rows between all ranks of the group. `send` is [S, w...] with its rows grouped by
  // destination: the first send_rows[0] rows go to rank 0, the next send_rows[1] to rank 1, ...
  // `recv` is [R, w...] and receives the rows from rank 0 first, then rank 1, ... with
  // recv_rows[j] rows from rank j. A row is the trailing row_width = numel / dim(0) elements,
  // the same on every rank; S = Σ send_rows, R = Σ recv_rows. Counts may be zero (and S or R
  // may be 0, with row_width given by the other dims). Counts must match pairwise: rank i's
  // send_rows[j] == rank j's recv_rows[i] (exchange them first with ExchangeCounts).
  virtual void AllToAllV(const Tensor& send, std::span<const int64_t> send_rows, Tensor recv,
                         std::span<const int64_t> recv_rows) = 0;

  // In place: every rank's `tensor` takes group rank `root`'s values. Same element count on
  // every rank.
  virtual void Broadcast(Tensor tensor, int root) = 0;

  // Returns when every rank of the group has entered Barrier.
  virtual void Barrier() = 0;

  // Collective over this group: creates sub-groups. Ranks passing the same `color` form one new
  // group, ordered by `key` (ties by rank here). Every rank gets its own new group; `name`
  // labels it in messages. The new communicator shares this one's backend options (watchdog,
  // timeouts) and must be destroyed before the distributed context is finalized.
  virtual std::unique_ptr<Communicator> Split(int color, int key, std::string name) = 0;

  // ---- Started (non-blocking) collectives ----------------------------------------------------

  // Starts AllReduce(tensor, op) and returns a handle at once; the result, bitwise the same as
  // AllReduce's, is in `tensor` when the handle's Test() returns true or Wait() returns. Ordered
  // like the blocking calls: every rank of the group starts the same calls in the same order,
  // and blocking calls on the group made while one is pending come after it in that order.
  // Progress: the MPI backend advances pending work only while this rank is inside an MPI call
  // (Test() included), so a caller overlapping compute calls Test() now and then. This base
  // version, for backends without an asynchronous form, runs the whole AllReduce here.
  virtual std::unique_ptr<PendingCollective> StartAllReduce(Tensor tensor, ReduceOp op);

  // ---- Conveniences built on the collectives above -------------------------------------------

  // AllToAllV into a new CPU tensor of shape [Σ recv_rows, w...] (w... from send's shape).
  Tensor AllToAllV(const Tensor& send, std::span<const int64_t> send_rows,
                   std::span<const int64_t> recv_rows);

  // Collective: rank i passes counts_for_peer[j] (one count per group rank) and receives the
  // counts every peer addressed to it: result[j] = rank j's counts_for_peer[i]. This is how
  // AllToAllV's receive counts are learned.
  std::vector<int64_t> ExchangeCounts(std::span<const int64_t> counts_for_peer);

  // ---- Accounting ---------------------------------------------------------------------------

  // Wall seconds this rank has spent inside this group's collectives since the communicator was
  // created: from entry to return of every call above except Split, waiting for slower peers
  // included (a rank that arrives first waits; that is time it did not compute). Monotone;
  // callers take differences (the trainer logs them per step and per group). The NCCL backend,
  // whose calls return once the work is enqueued, reports the device time its collectives took
  // instead (CUDA events; parallel/nccl/nccl_communicator.h).
  virtual double seconds_in_collectives() const { return seconds_in_collectives_; }

 protected:
  Communicator() = default;

  // Backends open one at the top of every collective. Nested scopes (a collective built on
  // another) count once, at the outermost.
  class CollectiveTimer {
   public:
    explicit CollectiveTimer(Communicator* comm)
        : comm_(comm), outermost_(comm->timer_depth_++ == 0) {
      if (outermost_) start_ = SteadyClock::now();
    }
    ~CollectiveTimer() {
      --comm_->timer_depth_;
      if (outermost_) comm_->seconds_in_collectives_ += SecondsSince(start_);
    }
    CollectiveTimer(const CollectiveTimer&) = delete;
    CollectiveTimer& operator=(const CollectiveTimer&) = delete;

   private:
    Communicator* comm_;
    bool outermost_;
    SteadyClock::time_point start_;
  };

 private:
  double seconds_in_collectives_ = 0.0;
  int timer_depth_ = 0;
};

}  // namespace aoetron::parallel
