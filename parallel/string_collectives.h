// Strings over a Communicator (which moves tensors): for the few collectives that carry text —
// a checkpoint's shard reports, a path found by rank 0, every rank's host name.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "parallel/communicator.h"

namespace aoetron::parallel {

// Every rank's `mine`, in group rank order, on every rank. Collective over `comm`.
std::vector<std::string> AllGatherStrings(Communicator& comm, const std::string& mine);

// Group rank 0's `text` on every rank. Collective over `comm`.
std::string BroadcastString(Communicator& comm, const std::string& text);

// Group rank 0's `status` on every rank (code and message). Collective over `comm`.
absl::Status BroadcastStatus(Communicator& comm, const absl::Status& status);

}  // namespace aoetron::parallel
