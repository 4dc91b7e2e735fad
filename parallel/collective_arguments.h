// Argument checks of the Communicator contract (communicator.h) that every backend makes the
// same way, so that MPI, NCCL and any later backend reject a misuse with the same words.
// Each check returns the cause ("" when the arguments are fine); the backend ends the job with
// it through its own Fail, which adds the rank, group and call.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "core/tensor.h"

namespace aoetron::parallel {

// Product of all dimensions but the first: the elements of one row.
int64_t RowWidth(const Tensor& t);

// AllToAllV's shape rules for a group of `group_size`: both tensors have a row dimension, one
// dtype and one row width; one count per peer, none negative; send_rows sums to send's rows and
// recv_rows to recv's. Tensors are assumed already checked for definedness and device.
std::string AllToAllVArgumentError(const Tensor& send, std::span<const int64_t> send_rows,
                                   const Tensor& recv, std::span<const int64_t> recv_rows,
                                   int group_size);

}  // namespace aoetron::parallel
