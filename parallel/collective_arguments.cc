#include "parallel/collective_arguments.h"

#include "absl/strings/str_cat.h"

namespace aoetron::parallel {

int64_t RowWidth(const Tensor& t) {
  int64_t width = 1;
  for (int i = 1; i < t.rank(); ++i) width *= t.shape()[i];
  return width;
}

std::string AllToAllVArgumentError(const Tensor& send, std::span<const int64_t> send_rows,
                                   const Tensor& recv, std::span<const int64_t> recv_rows,
                                   int group_size) {
  const std::string pair =
      absl::StrCat("send ", send.DebugString(), " and recv ", recv.DebugString());
  if (send.rank() < 1 || recv.rank() < 1) return pair + " must have a row dimension";
  if (send.dtype() != recv.dtype()) return pair + " differ in dtype";
  if (RowWidth(send) != RowWidth(recv)) return pair + " differ in row width";
  if (static_cast<int>(send_rows.size()) != group_size ||
      static_cast<int>(recv_rows.size()) != group_size) {
    return absl::StrCat("send_rows has ", send_rows.size(), " and recv_rows ", recv_rows.size(),
                        " counts; the group has ", group_size, " ranks");
  }
  int64_t send_total = 0, recv_total = 0;
  for (int r = 0; r < group_size; ++r) {
    if (send_rows[r] < 0 || recv_rows[r] < 0) {
      return absl::StrCat("negative row count for peer ", r);
    }
    send_total += send_rows[r];
    recv_total += recv_rows[r];
  }
  if (send_total != send.dim(0)) {
    return absl::StrCat("send_rows sums to ", send_total, " but send has ", send.dim(0), " rows");
  }
  if (recv_total != recv.dim(0)) {
    return absl::StrCat("recv_rows sums to ", recv_total, " but recv has ", recv.dim(0), " rows");
  }
  return "";
}

}  // namespace aoetron::parallel
