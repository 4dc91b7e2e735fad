#include "parallel/nccl/nccl_communicator.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "core/cuda/cuda_check.h"
#include "core/cuda/device_context.h"
#include "core/cuda/device_memory.h"
#include "core/cuda/rank_order_reduce.h"
#include "parallel/abort.h"
#include "parallel/collective_arguments.h"
#include "parallel/rank_order_reduction.h"

namespace aoetron::parallel {

// Scratch on the current device for one collective. Freed when the call returns: the caching
// allocator hands the block out again only to work that the compute stream orders after this
// collective (it waits for the communication stream before the call returns).
class NcclScratch {
 public:
  explicit NcclScratch(size_t bytes)
      : data_(static_cast<char*>(cuda::AllocateDeviceMemory(bytes))) {}
  ~NcclScratch() { cuda::FreeDeviceMemory(data_); }
  NcclScratch(const NcclScratch&) = delete;
  NcclScratch& operator=(const NcclScratch&) = delete;
  char* get() const { return data_; }

 private:
  char* data_;
};

// One communication stream per device for every NCCL communicator of the process: NCCL requires
// that operations on different communicators do not run concurrently unless ordered the same on
// every rank; on one stream they run in program order, which is the same on every rank, and still
// overlap compute. Created on first use, never destroyed.
cudaStream_t SharedCommunicationStream(int device) {
  static std::mutex mutex;
  static std::map<int, cudaStream_t>* streams = new std::map<int, cudaStream_t>();
  std::lock_guard<std::mutex> lock(mutex);
  cudaStream_t& stream = (*streams)[device];
  if (stream == nullptr) CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  return stream;
}

int DeviceForLocalRank(int local_rank) {
  const int visible = cuda::VisibleDeviceCount();
  AOETRON_CHECK(visible > 0) << "no CUDA device visible for local rank " << local_rank << ": "
                             << cuda::NoDeviceReason();
  return local_rank % visible;
}

std::unique_ptr<NcclCommunicator> NcclCommunicator::Create(Communicator& bootstrap) {
  return std::unique_ptr<NcclCommunicator>(new NcclCommunicator(bootstrap, nullptr));
}

NcclCommunicator::NcclCommunicator(Communicator& bootstrap,
                                   std::unique_ptr<Communicator> owned_bootstrap)
    : owned_bootstrap_(std::move(owned_bootstrap)),
      bootstrap_(&bootstrap),
      name_(bootstrap.name()),
      rank_(bootstrap.rank()),
      size_(bootstrap.size()),
      world_rank_(bootstrap.world_rank()) {
  CheckCuda(cudaGetDevice(&device_), "cudaGetDevice");
  // 1. Rank 0 draws the id; every rank receives it over the CPU communicator (128 bytes moved
  //    as 16 i64 words).
  ncclUniqueId id;
  static_assert(sizeof(id) % sizeof(int64_t) == 0);
  if (rank_ == 0) CheckNccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  bootstrap_->Broadcast(
      Tensor::Wrap(&id, {static_cast<int64_t>(sizeof(id) / sizeof(int64_t))}, DType::kI64), 0);
  // 2. Join the group on this device.
  CheckNccl(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
  // 3. The device's communication stream (shared by every NCCL communicator of this process on
  //    that device) and the two events that order it against compute.
  stream_ = SharedCommunicationStream(device_);
  CheckCuda(cudaEventCreateWithFlags(&compute_done_, cudaEventDisableTiming), "cudaEventCreate");
  CheckCuda(cudaEventCreateWithFlags(&communication_done_, cudaEventDisableTiming),
            "cudaEventCreate");
}

NcclCommunicator::~NcclCommunicator() {
  // Outstanding work first: destroying the communicator under a running collective is undefined.
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  if (comm_ != nullptr) ncclCommDestroy(comm_);
  seconds_in_collectives();  // accounts (and returns to the spares) every recorded pair
  for (const TimingEvents& events : spare_timing_) {
    cudaEventDestroy(events.start);
    cudaEventDestroy(events.stop);
  }
  if (compute_done_ != nullptr) cudaEventDestroy(compute_done_);
  if (communication_done_ != nullptr) cudaEventDestroy(communication_done_);
  // The shared stream stays for the process's other communicators.
}

void NcclCommunicator::Fail(const std::string& call, const std::string& cause) const {
  AbortAllWithMessage(
      absl::StrCat("rank ", world_rank_, " (group ", name_, "): ", call, " failed: ", cause));
}

void NcclCommunicator::CheckNccl(ncclResult_t result, const char* nccl_call) const {
  if (result == ncclSuccess) return;
  const char* last = ncclGetLastError(comm_);
  Fail(nccl_call, absl::StrCat(ncclGetErrorString(result), last != nullptr ? " (" : "",
                               last != nullptr ? last : "", last != nullptr ? ")" : ""));
}

void NcclCommunicator::CheckCuda(cudaError_t result, const char* cuda_call) const {
  if (result == cudaSuccess) return;
  Fail(cuda_call, absl::StrCat(cudaGetErrorName(result), " (", cudaGetErrorString(result), ")"));
}

void NcclCommunicator::CheckTensor(const std::string& call, const Tensor& tensor, const char* what,
                                   bool reduction) const {
  if (!tensor.defined()) Fail(call, absl::StrCat(what, " is an undefined tensor"));
  if (tensor.device() != Device::Cuda(device_)) {
    Fail(call, absl::StrCat(what, " ", tensor.DebugString(), " is not on cuda:", device_,
                            " (the NCCL backend moves tensors of this process's GPU)"));
  }
  if (reduction && !IsReducible(tensor.dtype())) {
    Fail(call, absl::StrCat(what, " ", tensor.DebugString(),
                            ": reductions take f32, f64, bf16, i32 or i64"));
  }
}

void NcclCommunicator::CommunicationWaitsForCompute() {
  cudaStream_t compute = cuda::DeviceContext::Get(device_).stream();
  CheckCuda(cudaEventRecord(compute_done_, compute), "cudaEventRecord");
  CheckCuda(cudaStreamWaitEvent(stream_, compute_done_, 0), "cudaStreamWaitEvent");
  // The collective's own time starts here, on the communication stream.
  TimingEvents timing = TakeTimingEvents();
  CheckCuda(cudaEventRecord(timing.start, stream_), "cudaEventRecord");
  recorded_.push_back(timing);
}

void NcclCommunicator::EndTiming() {
  CheckCuda(cudaEventRecord(recorded_.back().stop, stream_), "cudaEventRecord");
}

void NcclCommunicator::ComputeWaitsForCommunication() {
  EndTiming();
  cudaStream_t compute = cuda::DeviceContext::Get(device_).stream();
  CheckCuda(cudaEventRecord(communication_done_, stream_), "cudaEventRecord");
  CheckCuda(cudaStreamWaitEvent(compute, communication_done_, 0), "cudaStreamWaitEvent");
}

NcclCommunicator::TimingEvents NcclCommunicator::TakeTimingEvents() {
  if (!spare_timing_.empty()) {
    TimingEvents events = spare_timing_.back();
    spare_timing_.pop_back();
    return events;
  }
  TimingEvents events;
  CheckCuda(cudaEventCreate(&events.start), "cudaEventCreate");
  CheckCuda(cudaEventCreate(&events.stop), "cudaEventCreate");
  return events;
}

double NcclCommunicator::seconds_in_collectives() const {
  // Waits for the recorded collectives to finish (the trainer asks at step boundaries, after the
  // step's results reached the host anyway) and adds their device time.
  for (const TimingEvents& events : recorded_) {
    float ms = 0.0f;
    if (cudaEventSynchronize(events.stop) == cudaSuccess &&
        cudaEventElapsedTime(&ms, events.start, events.stop) == cudaSuccess) {
      device_seconds_ += static_cast<double>(ms) * 1e-3;
    }
    spare_timing_.push_back(events);
  }
  recorded_.clear();
  return Communicator::seconds_in_collectives() + device_seconds_;
}

// A started AllReduce: enqueued on the communication stream, joined to the compute stream only
// at Wait (or once Test sees it done, or at destruction). It owns the collective's scratch and a
// handle on its tensor until then, so the caching allocator cannot hand either to compute work
// that may run alongside. CUDA failures end the job like the communicator's own (`check`).
class NcclPendingCollective final : public PendingCollective {
 public:
  using Check = std::function<void(cudaError_t, const char*)>;
  NcclPendingCollective(int device, cudaEvent_t done, Tensor tensor,
                        std::unique_ptr<NcclScratch> scratch, Check check)
      : device_(device),
        done_(done),
        tensor_(std::move(tensor)),
        scratch_(std::move(scratch)),
        check_(std::move(check)) {}
  ~NcclPendingCollective() override {
    Join();
    scratch_.reset();
    tensor_ = Tensor();
    check_(cudaEventDestroy(done_), "cudaEventDestroy");
  }
  bool Test() override {
    if (joined_) return true;
    const cudaError_t state = cudaEventQuery(done_);
    if (state == cudaErrorNotReady) return false;
    check_(state, "cudaEventQuery");
    Join();
    return true;
  }
  // Complete in stream order: every op enqueued on the compute stream from now on sees the
  // result (the host does not block).
  void Wait() override { Join(); }

 private:
  void Join() {
    if (joined_) return;
    check_(cudaStreamWaitEvent(cuda::DeviceContext::Get(device_).stream(), done_, 0),
           "cudaStreamWaitEvent");
    joined_ = true;
  }
  int device_;
  cudaEvent_t done_;
  Tensor tensor_;
  std::unique_ptr<NcclScratch> scratch_;
  Check check_;
  bool joined_ = false;
};

void NcclCommunicator::Exchange(const std::vector<Range>& ranges, const char* call) {
  const Range& own = ranges[rank_];
  if (own.send_bytes != own.recv_bytes) {
    Fail(call, absl::StrCat("this rank sends ", own.send_bytes, " bytes to itself but expects ",
                            own.recv_bytes));
  }
  if (own.send_bytes > 0 && own.send != own.recv) {
    CheckCuda(
        cudaMemcpyAsync(own.recv, own.send, own.send_bytes, cudaMemcpyDeviceToDevice, stream_),
        "cudaMemcpyAsync");
  }
  CheckNccl(ncclGroupStart(), "ncclGroupStart");
  for (int peer = 0; peer < size_; ++peer) {
    if (peer == rank_) continue;
    const Range& range = ranges[peer];
    if (range.send_bytes > 0) {
      CheckNccl(ncclSend(range.send, range.send_bytes, ncclUint8, peer, comm_, stream_),
                "ncclSend");
    }
    if (range.recv_bytes > 0) {
      CheckNccl(ncclRecv(range.recv, range.recv_bytes, ncclUint8, peer, comm_, stream_),
                "ncclRecv");
    }
  }
  CheckNccl(ncclGroupEnd(), "ncclGroupEnd");
}

void NcclCommunicator::AllReduce(Tensor tensor, ReduceOp op) {
  std::unique_ptr<NcclScratch> scratch = EnqueueAllReduce(tensor, op);
  if (scratch != nullptr) ComputeWaitsForCommunication();
}

std::unique_ptr<PendingCollective> NcclCommunicator::StartAllReduce(Tensor tensor, ReduceOp op) {
  std::unique_ptr<NcclScratch> scratch = EnqueueAllReduce(tensor, op);
  cudaEvent_t done = nullptr;
  CheckCuda(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "cudaEventCreate");
  if (scratch != nullptr) EndTiming();
  CheckCuda(cudaEventRecord(done, stream_), "cudaEventRecord");
  return std::make_unique<NcclPendingCollective>(
      device_, done, tensor, std::move(scratch),
      [this](cudaError_t result, const char* call) { CheckCuda(result, call); });
}

std::unique_ptr<NcclScratch> NcclCommunicator::EnqueueAllReduce(Tensor tensor, ReduceOp op) {
  const std::string call = absl::StrCat("AllReduce(", ReduceOpName(op), ")");
  CheckTensor(call, tensor, "tensor", /*reduction=*/true);
  const int64_t numel = tensor.numel();
  if (size_ == 1 || numel == 0) return nullptr;
  const size_t word = SizeOf(tensor.dtype());
  const int p = size_;
  char* base = static_cast<char*>(tensor.raw_data());
  // Block r = elements [numel·r/p, numel·(r+1)/p) is reduced by rank r.
  std::vector<int64_t> begin(p + 1);
  for (int r = 0; r <= p; ++r) begin[r] = numel * r / p;
  const int64_t own = begin[rank_ + 1] - begin[rank_];
  auto scratch =
      std::make_unique<NcclScratch>(static_cast<size_t>(p) * std::max<int64_t>(own, 1) * word);
  NcclScratch& stacked = *scratch;
  CommunicationWaitsForCompute();
  // 1. Everyone's copy of my block, stacked in rank order.
  std::vector<Range> gather(p);
  for (int r = 0; r < p; ++r) {
    gather[r].send = base + begin[r] * word;
    gather[r].send_bytes = static_cast<size_t>(begin[r + 1] - begin[r]) * word;
    gather[r].recv = stacked.get() + static_cast<size_t>(r) * own * word;
    gather[r].recv_bytes = static_cast<size_t>(own) * word;
  }
  Exchange(gather, "AllReduce: block exchange");
  // 2. Combine in rank order into my block of the tensor.
  cuda::ReduceInRankOrder(op == ReduceOp::kSum ? cuda::RankOrderOp::kSum : cuda::RankOrderOp::kMax,
                          tensor.dtype(), stacked.get(), p, own, base + begin[rank_] * word,
                          stream_);
  // 3. Spread the reduced blocks.
  std::vector<Range> spread(p);
  for (int r = 0; r < p; ++r) {
    spread[r].send = base + begin[rank_] * word;
    spread[r].send_bytes = static_cast<size_t>(own) * word;
    spread[r].recv = base + begin[r] * word;
    spread[r].recv_bytes = static_cast<size_t>(begin[r + 1] - begin[r]) * word;
  }
  Exchange(spread, "AllReduce: all-gather");
  return scratch;
}

void NcclCommunicator::ReduceScatter(const Tensor& input, Tensor output) {
  const std::string call = "ReduceScatter(sum)";
  CheckTensor(call, input, "input", /*reduction=*/true);
  CheckTensor(call, output, "output", /*reduction=*/true);
  if (input.dtype() != output.dtype()) {
    Fail(call, absl::StrCat("input ", input.DebugString(), " and output ", output.DebugString(),
                            " differ in dtype"));
  }
  const int64_t n = output.numel();
  if (input.numel() != size_ * n) {
    Fail(call, absl::StrCat("input ", input.DebugString(), " must hold group size ", size_,
                            " x output ", output.DebugString(), " elements"));
  }
  const size_t word = SizeOf(input.dtype());
  const char* in = static_cast<const char*>(input.raw_data());
  char* out = static_cast<char*>(output.raw_data());
  if (n == 0) return;
  CommunicationWaitsForCompute();
  if (size_ == 1) {
    if (in != out) {
      CheckCuda(cudaMemcpyAsync(out, in, n * word, cudaMemcpyDeviceToDevice, stream_),
                "cudaMemcpyAsync");
    }
    ComputeWaitsForCommunication();
    return;
  }
  NcclScratch stacked(static_cast<size_t>(size_) * n * word);
  std::vector<Range> gather(size_);
  for (int r = 0; r < size_; ++r) {
    gather[r].send = in + static_cast<size_t>(r) * n * word;
    gather[r].send_bytes = static_cast<size_t>(n) * word;
    gather[r].recv = stacked.get() + static_cast<size_t>(r) * n * word;
    gather[r].recv_bytes = static_cast<size_t>(n) * word;
  }
  Exchange(gather, "ReduceScatter: block exchange");
  cuda::ReduceInRankOrder(cuda::RankOrderOp::kSum, input.dtype(), stacked.get(), size_, n, out,
                          stream_);
  ComputeWaitsForCommunication();
}

void NcclCommunicator::AllGather(const Tensor& input, Tensor output) {
  const std::string call = "AllGather";
  CheckTensor(call, input, "input", /*reduction=*/false);
  CheckTensor(call, output, "output", /*reduction=*/false);
  if (input.dtype() != output.dtype()) {
    Fail(call, absl::StrCat("input ", input.DebugString(), " and output ", output.DebugString(),
                            " differ in dtype"));
  }
  const int64_t n = input.numel();
  if (output.numel() != size_ * n) {
    Fail(call, absl::StrCat("output ", output.DebugString(), " must hold group size ", size_,
                            " x input ", input.DebugString(), " elements"));
  }
  if (n == 0) return;
  const size_t bytes = static_cast<size_t>(n) * SizeOf(input.dtype());
  CommunicationWaitsForCompute();
  // NCCL's in-place form is input == the output's own block.
  CheckNccl(ncclAllGather(input.raw_data(), output.raw_data(), bytes, ncclUint8, comm_, stream_),
            "ncclAllGather");
  ComputeWaitsForCommunication();
}

void NcclCommunicator::AllToAllV(const Tensor& send, std::span<const int64_t> send_rows,
                                 Tensor recv, std::span<const int64_t> recv_rows) {
  const std::string call = "AllToAllV";
  CheckTensor(call, send, "send", /*reduction=*/false);
  CheckTensor(call, recv, "recv", /*reduction=*/false);
  if (const std::string error = AllToAllVArgumentError(send, send_rows, recv, recv_rows, size_);
      !error.empty()) {
    Fail(call, error);
  }
  const size_t row_bytes = static_cast<size_t>(RowWidth(send)) * SizeOf(send.dtype());
  if (row_bytes == 0) return;
  std::vector<Range> ranges(size_);
  const char* send_base = static_cast<const char*>(send.raw_data());
  char* recv_base = static_cast<char*>(recv.raw_data());
  int64_t send_offset = 0, recv_offset = 0;
  for (int r = 0; r < size_; ++r) {
    ranges[r].send = send_base + send_offset * row_bytes;
    ranges[r].send_bytes = static_cast<size_t>(send_rows[r]) * row_bytes;
    ranges[r].recv = recv_base + recv_offset * row_bytes;
    ranges[r].recv_bytes = static_cast<size_t>(recv_rows[r]) * row_bytes;
    send_offset += send_rows[r];
    recv_offset += recv_rows[r];
  }
  CommunicationWaitsForCompute();
  Exchange(ranges, "AllToAllV");
  ComputeWaitsForCommunication();
}

void NcclCommunicator::Broadcast(Tensor tensor, int root) {
  const std::string call = "Broadcast";
  CheckTensor(call, tensor, "tensor", /*reduction=*/false);
  if (root < 0 || root >= size_) {
    Fail(call, absl::StrCat("root ", root, " is outside the group of ", size_));
  }
  if (size_ == 1 || tensor.numel() == 0) return;
  CommunicationWaitsForCompute();
  CheckNccl(ncclBroadcast(tensor.raw_data(), tensor.raw_data(), tensor.nbytes(), ncclUint8, root,
                          comm_, stream_),
            "ncclBroadcast");
  ComputeWaitsForCommunication();
}

void NcclCommunicator::Barrier() {
  CollectiveTimer timed(this);
  bootstrap_->Barrier();
}

std::unique_ptr<Communicator> NcclCommunicator::Split(int color, int key, std::string name) {
  std::unique_ptr<Communicator> part = bootstrap_->Split(color, key, std::move(name));
  Communicator& part_ref = *part;
  return std::unique_ptr<Communicator>(new NcclCommunicator(part_ref, std::move(part)));
}

}  // namespace aoetron::parallel
