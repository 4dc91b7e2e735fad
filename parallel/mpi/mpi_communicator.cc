#include "parallel/mpi/mpi_communicator.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <numeric>
#include <optional>

#include "absl/strings/str_cat.h"
#include "parallel/abort.h"
#include "parallel/collective_arguments.h"
#include "parallel/rank_order_reduction.h"
#include "parallel/watchdog.h"

namespace aoetron::parallel {
namespace {

// Elements travel as raw words of their size: no conversion, any dtype.
MPI_Datatype WordType(DType dtype) {
  switch (SizeOf(dtype)) {
    case 2:
      return MPI_UINT16_T;
    case 4:
      return MPI_UINT32_T;
    case 8:
      return MPI_UINT64_T;
    default:
      return MPI_BYTE;
  }
}

// A call's identity for the agreement check: FNV-1a over the fields that must match.
class Fingerprint {
 public:
  Fingerprint& Add(uint64_t value) {
    for (int i = 0; i < 8; ++i) {
      hash_ ^= (value >> (8 * i)) & 0xff;
      hash_ *= 0x100000001b3ull;
    }
    return *this;
  }
  Fingerprint& Add(const std::string& text) {
    for (char c : text) {
      hash_ ^= static_cast<unsigned char>(c);
      hash_ *= 0x100000001b3ull;
    }
    return Add(text.size());
  }
  uint64_t value() const { return hash_; }

 private:
  uint64_t hash_ = 0xcbf29ce484222325ull;
};

std::string TensorText(const Tensor& t) {
  return absl::StrCat(std::string(DTypeName(t.dtype())), ShapeToString(t.shape()));
}

// A committed MPI datatype of one row, freed on scope exit.
class RowType {
 public:
  RowType(int width, MPI_Datatype word) { rc_ = MPI_Type_contiguous(width, word, &type_); }
  int Commit() { return rc_ != MPI_SUCCESS ? rc_ : MPI_Type_commit(&type_); }
  ~RowType() {
    if (type_ != MPI_DATATYPE_NULL) MPI_Type_free(&type_);
  }
  MPI_Datatype get() const { return type_; }

 private:
  MPI_Datatype type_ = MPI_DATATYPE_NULL;
  int rc_;
};

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm, bool take_ownership, std::string name,
                                 CollectiveOptions options)
    : comm_(comm), owns_comm_(take_ownership), name_(std::move(name)), options_(options) {
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank_);  // for messages, before anything can fail
  CheckMpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  CheckMpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
  CheckMpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
}

MpiCommunicator::~MpiCommunicator() {
  if (!owns_comm_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) CheckMpi(MPI_Comm_free(&comm_), "MPI_Comm_free");
}

void MpiCommunicator::Fail(const std::string& call, const std::string& cause) const {
  AbortAllWithMessage(
      absl::StrCat("rank ", world_rank_, " (group ", name_, "): ", call, " failed: ", cause));
}

void MpiCommunicator::CheckMpi(int rc, const char* mpi_call) const {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(rc, text, &length) != MPI_SUCCESS) {
    length = std::snprintf(text, sizeof(text), "MPI error code %d", rc);
  }
  Fail(mpi_call, std::string(text, static_cast<size_t>(std::max(length, 0))));
}

void MpiCommunicator::CheckTensor(const std::string& call, const Tensor& tensor, const char* what,
                                  bool reduction) const {
  if (!tensor.defined()) Fail(call, absl::StrCat(what, " is an undefined tensor"));
  if (!tensor.device().host_memory()) {
    Fail(call, absl::StrCat(what, " ", tensor.DebugString(),
                            " is not in host memory (the MPI backend moves CPU tensors)"));
  }
  if (reduction && !IsReducible(tensor.dtype())) {
    Fail(call,
         absl::StrCat(what, " ", tensor.DebugString(), ": reductions take f32, f64, i32 or i64"));
  }
}

void MpiCommunicator::CheckAgreement(const std::string& call, uint64_t fingerprint) {
  if (!options_.check_agreement || size_ == 1) return;
  // max(f) == f and max(~f) == ~f on every rank  <=>  min(f) == max(f).
  uint64_t values[2] = {fingerprint, ~fingerprint};
  CheckMpi(MPI_Allreduce(MPI_IN_PLACE, values, 2, MPI_UINT64_T, MPI_MAX, comm_), "MPI_Allreduce");
  if (values[0] != fingerprint || values[1] != ~fingerprint) {
    Fail(call,
         "the ranks of the group disagree on this call (another collective, dtype, element count, "
         "reduce op or root on some rank: the collectives are out of order)");
  }
}

std::string MpiCommunicator::Describe(const std::string& what) {
  return absl::StrCat(what, " on group ", name_, " (collective #", ++collectives_called_,
                      " of the group)");
}

// The AllReduce of the file comment as a state machine: for each segment, an exchange
// (MPI_Ialltoallv of the blocks to their reducers), the rank-order reduction of this rank's
// block, then a gather (MPI_Iallgatherv of the reduced blocks). It waits in the communicator's
// queue until it reaches the front; then exactly one of its MPI requests is in flight at a time.
class MpiCommunicator::PendingAllReduce final : public PendingCollective {
 public:
  PendingAllReduce(MpiCommunicator* comm, Tensor tensor, ReduceOp op)
      : comm_(comm), tensor_(std::move(tensor)), op_(op) {
    const std::string call = absl::StrCat("AllReduce(", ReduceOpName(op), ")");
    comm_->CheckTensor(call, tensor_, "tensor", /*reduction=*/true);
    // Armed from the start to the completion of the collective.
    deadline_.emplace(comm_->options_.watchdog,
                      comm_->Describe(absl::StrCat(call, " of ", TensorText(tensor_))),
                      comm_->options_.collective_timeout);
    const DType dtype = tensor_.dtype();
    numel_ = tensor_.numel();
    if (comm_->options_.check_agreement) {
      comm_->DrainQueue();  // the check is a blocking collective
      comm_->CheckAgreement(call, Fingerprint()
                                      .Add(1)
                                      .Add(static_cast<uint64_t>(dtype))
                                      .Add(numel_)
                                      .Add(static_cast<uint64_t>(op))
                                      .value());
    }
    if (comm_->size_ == 1 || numel_ == 0) {
      Finish();
      return;
    }
    word_ = SizeOf(dtype);
    type_ = WordType(dtype);
    const int p = comm_->size_;
    segment_ = std::clamp<int64_t>(
        comm_->options_.reduction_segment_bytes / static_cast<int64_t>(word_), p, INT_MAX / 2);
    block_counts_.resize(p);
    block_offsets_.resize(p);
    recv_counts_.resize(p);
    recv_offsets_.resize(p);
    stage_ = Stage::kQueued;
    comm_->reduction_queue_.push_back(this);
    comm_->AdvanceQueue(this, /*block=*/false);
  }
  ~PendingAllReduce() override { Wait(); }

  bool Test() override {
    if (done()) return true;
    CollectiveTimer timed(comm_);
    comm_->AdvanceQueue(this, /*block=*/false);
    return done();
  }

  void Wait() override {
    if (done()) return;
    CollectiveTimer timed(comm_);
    comm_->AdvanceQueue(this, /*block=*/true);
  }

  bool done() const { return stage_ == Stage::kDone; }

  // Called by the queue on its front entry: starts the first exchange, or completes the
  // request in flight (waiting for it with `block`) and starts the next one. False when the
  // request in flight is not complete yet (only without `block`).
  bool Step(bool block) {
    if (stage_ == Stage::kQueued) {
      if (!comm_->spare_reduction_buffers_.empty()) {
        scratch_ = std::move(comm_->spare_reduction_buffers_.back());
        comm_->spare_reduction_buffers_.pop_back();
      }
      StartExchange();
      return true;
    }
    if (block) {
      comm_->CheckMpi(MPI_Wait(&request_, MPI_STATUS_IGNORE), "MPI_Wait");
    } else {
      int complete = 0;
      comm_->CheckMpi(MPI_Test(&request_, &complete, MPI_STATUS_IGNORE), "MPI_Test");
      if (!complete) return false;
    }
    Advance();
    return true;
  }

 private:
  enum class Stage { kQueued, kExchange, kGather, kDone };

  char* segment_base() {
    const DeviceAccessScope device_buffers;  // a device communicator (core/device_access.h)
    return static_cast<char*>(tensor_.raw_data()) + offset_ * static_cast<int64_t>(word_);
  }

  // Block r of the segment at offset_, [length·r/p, length·(r+1)/p), is reduced by rank r.
  void StartExchange() {
    const int p = comm_->size_;
    const int64_t length = std::min(segment_, numel_ - offset_);
    for (int r = 0; r < p; ++r) {
      const int64_t begin = length * r / p;
      const int64_t end = length * (r + 1) / p;
      block_offsets_[r] = static_cast<int>(begin);
      block_counts_[r] = static_cast<int>(end - begin);
    }
    const int own = block_counts_[comm_->rank_];
    for (int r = 0; r < p; ++r) {
      recv_counts_[r] = own;
      recv_offsets_[r] = r * own;
    }
    scratch_.resize(static_cast<size_t>(p) * own * word_);
    comm_->CheckMpi(MPI_Ialltoallv(segment_base(), block_counts_.data(), block_offsets_.data(),
                                   type_, scratch_.data(), recv_counts_.data(),
                                   recv_offsets_.data(), type_, comm_->comm_, &request_),
                    "MPI_Ialltoallv");
    stage_ = Stage::kExchange;
  }

  // The request in flight has completed: do the local part and start the next request.
  void Advance() {
    if (stage_ == Stage::kExchange) {
      const int p = comm_->size_;
      const int own = block_counts_[comm_->rank_];
      std::vector<const void*> contributions(p);
      for (int r = 0; r < p; ++r) {
        contributions[r] = scratch_.data() + static_cast<size_t>(r) * own * word_;
      }
      char* base = segment_base();
      ReduceInRankOrder(op_, tensor_.dtype(), contributions,
                        base + block_offsets_[comm_->rank_] * word_, own);
      comm_->CheckMpi(
          MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, base, block_counts_.data(),
                          block_offsets_.data(), type_, comm_->comm_, &request_),
          "MPI_Iallgatherv");
      stage_ = Stage::kGather;
      return;
    }
    offset_ += std::min(segment_, numel_ - offset_);
    if (offset_ < numel_) {
      StartExchange();
    } else {
      Finish();
    }
  }

  void Finish() {
    stage_ = Stage::kDone;
    deadline_.reset();
    if (scratch_.capacity() > 0) comm_->spare_reduction_buffers_.push_back(std::move(scratch_));
  }

  MpiCommunicator* comm_;
  Tensor tensor_;
  ReduceOp op_;
  std::optional<ScopedDeadline> deadline_;
  size_t word_ = 0;
  MPI_Datatype type_ = MPI_BYTE;
  int64_t numel_ = 0, segment_ = 0, offset_ = 0;
  Stage stage_ = Stage::kDone;
  MPI_Request request_ = MPI_REQUEST_NULL;
  std::vector<int> block_counts_, block_offsets_, recv_counts_, recv_offsets_;
  std::vector<char> scratch_;
};

void MpiCommunicator::AdvanceQueue(const PendingAllReduce* until, bool block) {
  while (!reduction_queue_.empty()) {
    PendingAllReduce* front = reduction_queue_.front();
    // Without `block`, stop at the first request still in flight.
    if (!front->Step(block)) return;
    if (front->done()) {
      reduction_queue_.pop_front();
      if (front == until) return;
    }
  }
}

std::unique_ptr<PendingCollective> MpiCommunicator::StartAllReduce(Tensor tensor, ReduceOp op) {
  CollectiveTimer timed(this);
  return std::make_unique<PendingAllReduce>(this, std::move(tensor), op);
}

void MpiCommunicator::AllReduce(Tensor tensor, ReduceOp op) {
  CollectiveTimer timed(this);
  PendingAllReduce(this, std::move(tensor), op).Wait();
}

void MpiCommunicator::ReduceScatter(const Tensor& input, Tensor output) {
  const DeviceAccessScope device_buffers;  // a device communicator (core/device_access.h)
  CollectiveTimer timed(this);
  DrainQueue();  // MPI order: started AllReduces first, on every rank
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
  ScopedDeadline deadline(options_.watchdog,
                          Describe(absl::StrCat(call, " of ", TensorText(input))),
                          options_.collective_timeout);
  const DType dtype = input.dtype();
  CheckAgreement(call, Fingerprint().Add(2).Add(static_cast<uint64_t>(dtype)).Add(n).value());
  const size_t word = SizeOf(dtype);
  const char* in = static_cast<const char*>(input.raw_data());
  char* out = static_cast<char*>(output.raw_data());
  if (size_ == 1) {
    if (n > 0 && in != out) std::memmove(out, in, n * word);
    return;
  }
  const int p = size_;
  const MPI_Datatype type = WordType(dtype);
  // Each segment moves `length` elements of every block: p·length words out and in.
  const int64_t segment = std::clamp<int64_t>(
      options_.reduction_segment_bytes / static_cast<int64_t>(word * p), 1, INT_MAX / 2);
  std::vector<const void*> contributions(p);
  for (int64_t offset = 0; offset < n; offset += segment) {
    const int64_t length = std::min(segment, n - offset);
    const char* send = in;
    if (length != n) {  // gather this segment of every block into one contiguous send buffer
      send_scratch_.resize(static_cast<size_t>(p) * length * word);
      for (int r = 0; r < p; ++r) {
        std::memcpy(send_scratch_.data() + static_cast<size_t>(r) * length * word,
                    in + (static_cast<size_t>(r) * n + offset) * word, length * word);
      }
      send = send_scratch_.data();
    }
    recv_scratch_.resize(static_cast<size_t>(p) * length * word);
    CheckMpi(MPI_Alltoall(send, static_cast<int>(length), type, recv_scratch_.data(),
                          static_cast<int>(length), type, comm_),
             "MPI_Alltoall");
    for (int r = 0; r < p; ++r) {
      contributions[r] = recv_scratch_.data() + static_cast<size_t>(r) * length * word;
    }
    ReduceInRankOrder(ReduceOp::kSum, dtype, contributions, out + offset * word, length);
  }
}

void MpiCommunicator::AllGather(const Tensor& input, Tensor output) {
  const DeviceAccessScope device_buffers;  // a device communicator (core/device_access.h)
  CollectiveTimer timed(this);
  DrainQueue();  // MPI order: started AllReduces first, on every rank
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
  if (n > INT_MAX) Fail(call, absl::StrCat("a block of ", n, " elements exceeds 2^31 - 1"));
  ScopedDeadline deadline(options_.watchdog,
                          Describe(absl::StrCat(call, " of ", TensorText(input))),
                          options_.collective_timeout);
  const DType dtype = input.dtype();
  CheckAgreement(call, Fingerprint().Add(3).Add(static_cast<uint64_t>(dtype)).Add(n).value());
  const size_t word = SizeOf(dtype);
  char* out = static_cast<char*>(output.raw_data());
  const void* own_block = out + static_cast<size_t>(rank_) * n * word;
  const bool in_place = input.raw_data() == own_block;
  if (size_ == 1) {
    if (!in_place && n > 0) std::memmove(out, input.raw_data(), n * word);
    return;
  }
  const MPI_Datatype type = WordType(dtype);
  CheckMpi(MPI_Allgather(in_place ? MPI_IN_PLACE : input.raw_data(), static_cast<int>(n), type, out,
                         static_cast<int>(n), type, comm_),
           "MPI_Allgather");
}

void MpiCommunicator::AllToAllV(const Tensor& send, std::span<const int64_t> send_rows, Tensor recv,
                                std::span<const int64_t> recv_rows) {
  const DeviceAccessScope device_buffers;  // a device communicator (core/device_access.h)
  CollectiveTimer timed(this);
  DrainQueue();  // MPI order: started AllReduces first, on every rank
  const std::string call = "AllToAllV";
  CheckTensor(call, send, "send", /*reduction=*/false);
  CheckTensor(call, recv, "recv", /*reduction=*/false);
  if (const std::string error = AllToAllVArgumentError(send, send_rows, recv, recv_rows, size_);
      !error.empty()) {
    Fail(call, error);
  }
  const int64_t width = RowWidth(send);
  const int64_t send_total = send.dim(0), recv_total = recv.dim(0);
  if (send_total > INT_MAX || recv_total > INT_MAX || width > INT_MAX) {
    Fail(call, "row counts or the row width exceed 2^31 - 1");
  }
  ScopedDeadline deadline(
      options_.watchdog,
      Describe(absl::StrCat(call, " of ", std::string(DTypeName(send.dtype())), "[", send_total,
                            " -> ", recv_total, " rows x ", width, "]")),
      options_.collective_timeout);
  if (options_.check_agreement && size_ > 1) {
    CheckAgreement(
        call, Fingerprint().Add(4).Add(static_cast<uint64_t>(send.dtype())).Add(width).value());
    // Every pair must agree: what rank i sends to j is what j expects from i.
    std::vector<int64_t> sent_to_me(size_);
    CheckMpi(
        MPI_Alltoall(send_rows.data(), 1, MPI_INT64_T, sent_to_me.data(), 1, MPI_INT64_T, comm_),
        "MPI_Alltoall");
    for (int r = 0; r < size_; ++r) {
      if (sent_to_me[r] != recv_rows[r]) {
        Fail(call, absl::StrCat("rank ", r, " of the group sends ", sent_to_me[r],
                                " rows here but recv_rows expects ", recv_rows[r]));
      }
    }
  }
  const size_t row_bytes = static_cast<size_t>(width) * SizeOf(send.dtype());
  if (size_ == 1) {
    if (row_bytes > 0 && send_total > 0 && send.raw_data() != recv.raw_data()) {
      std::memmove(recv.raw_data(), send.raw_data(), send_total * row_bytes);
    }
    return;
  }
  if (width == 0) return;  // rows without elements: nothing to move
  std::vector<int> send_counts(size_), send_offsets(size_), recv_counts(size_), recv_offsets(size_);
  int send_offset = 0;
  int recv_offset = 0;
  for (int r = 0; r < size_; ++r) {
    send_counts[r] = static_cast<int>(send_rows[r]);
    send_offsets[r] = send_offset;
    send_offset += send_counts[r];
    recv_counts[r] = static_cast<int>(recv_rows[r]);
    recv_offsets[r] = recv_offset;
    recv_offset += recv_counts[r];
  }
  RowType row(static_cast<int>(width), WordType(send.dtype()));
  CheckMpi(row.Commit(), "MPI_Type_contiguous");
  CheckMpi(
      MPI_Alltoallv(send.raw_data(), send_counts.data(), send_offsets.data(), row.get(),
                    recv.raw_data(), recv_counts.data(), recv_offsets.data(), row.get(), comm_),
      "MPI_Alltoallv");
}

void MpiCommunicator::Broadcast(Tensor tensor, int root) {
  const DeviceAccessScope device_buffers;  // a device communicator (core/device_access.h)
  CollectiveTimer timed(this);
  DrainQueue();  // MPI order: started AllReduces first, on every rank
  const std::string call = "Broadcast";
  CheckTensor(call, tensor, "tensor", /*reduction=*/false);
  if (root < 0 || root >= size_) {
    Fail(call, absl::StrCat("root ", root, " is outside the group of ", size_));
  }
  ScopedDeadline deadline(
      options_.watchdog,
      Describe(absl::StrCat(call, " of ", TensorText(tensor), " from root ", root)),
      options_.collective_timeout);
  const int64_t numel = tensor.numel();
  CheckAgreement(
      call,
      Fingerprint().Add(5).Add(static_cast<uint64_t>(tensor.dtype())).Add(numel).Add(root).value());
  if (size_ == 1) return;
  const size_t word = SizeOf(tensor.dtype());
  const MPI_Datatype type = WordType(tensor.dtype());
  char* data = static_cast<char*>(tensor.raw_data());
  constexpr int64_t kChunk = int64_t{1} << 30;  // MPI counts are ints
  for (int64_t offset = 0; offset < numel; offset += kChunk) {
    const int count = static_cast<int>(std::min(kChunk, numel - offset));
    CheckMpi(MPI_Bcast(data + offset * word, count, type, root, comm_), "MPI_Bcast");
  }
}

void MpiCommunicator::Barrier() {
  CollectiveTimer timed(this);
  DrainQueue();  // MPI order: started AllReduces first, on every rank
  const std::string call = "Barrier";
  ScopedDeadline deadline(options_.watchdog, Describe(call), options_.collective_timeout);
  CheckAgreement(call, Fingerprint().Add(6).value());
  CheckMpi(MPI_Barrier(comm_), "MPI_Barrier");
}

std::unique_ptr<Communicator> MpiCommunicator::Split(int color, int key, std::string name) {
  const std::string call = absl::StrCat("Split(\"", name, "\")");
  if (color < 0) Fail(call, absl::StrCat("color ", color, " is negative"));
  DrainQueue();
  ScopedDeadline deadline(options_.watchdog, Describe(call), options_.collective_timeout);
  CheckAgreement(call, Fingerprint().Add(7).value());
  MPI_Comm sub = MPI_COMM_NULL;
  CheckMpi(MPI_Comm_split(comm_, color, key, &sub), "MPI_Comm_split");
  return std::make_unique<MpiCommunicator>(sub, /*take_ownership=*/true, std::move(name), options_);
}

}  // namespace aoetron::parallel
