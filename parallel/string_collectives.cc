#include "parallel/string_collectives.h"

#include <algorithm>
#include <cstring>

namespace aoetron::parallel {

namespace {

Tensor BytesAsI64(std::string& padded) {
  return Tensor::Wrap(padded.data(), {static_cast<int64_t>(padded.size() / 8)}, DType::kI64);
}

}  // namespace

// Every rank's `mine`, in group rank order, on every rank.
std::vector<std::string> AllGatherStrings(Communicator& comm, const std::string& mine) {
  const int n = comm.size();
  int64_t length = static_cast<int64_t>(mine.size());
  std::vector<int64_t> lengths(n);
  comm.AllGather(Tensor::Wrap(&length, {1}, DType::kI64),
                 Tensor::Wrap(lengths.data(), {n}, DType::kI64));
  int64_t longest = 0;
  for (int64_t l : lengths) longest = std::max(longest, l);
  const int64_t slot = std::max<int64_t>(8, (longest + 7) / 8 * 8);
  std::string send(slot, '\0');
  std::memcpy(send.data(), mine.data(), mine.size());
  std::string all(slot * n, '\0');
  comm.AllGather(BytesAsI64(send), BytesAsI64(all));
  std::vector<std::string> out(n);
  for (int r = 0; r < n; ++r) out[r] = all.substr(r * slot, lengths[r]);
  return out;
}

// Group rank 0's `text` on every rank.
std::string BroadcastString(Communicator& comm, const std::string& text) {
  int64_t length = static_cast<int64_t>(text.size());
  comm.Broadcast(Tensor::Wrap(&length, {1}, DType::kI64), 0);
  std::string buffer(std::max<int64_t>(8, (length + 7) / 8 * 8), '\0');
  if (comm.rank() == 0) std::memcpy(buffer.data(), text.data(), text.size());
  comm.Broadcast(BytesAsI64(buffer), 0);
  buffer.resize(length);
  return buffer;
}

// Group rank 0's `status` on every rank (code and message).
absl::Status BroadcastStatus(Communicator& comm, const absl::Status& status) {
  int64_t code = static_cast<int64_t>(status.code());
  comm.Broadcast(Tensor::Wrap(&code, {1}, DType::kI64), 0);
  const std::string message = BroadcastString(comm, std::string(status.message()));
  return absl::Status(static_cast<absl::StatusCode>(code), message);
}

}  // namespace aoetron::parallel
