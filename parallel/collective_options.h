// Options every communicator backend honours, shared by a communicator and the groups split
// from it. InitializeDistributed fills them from DistributedOptions.
#pragma once

#include <cstdint>

#include "absl/time/time.h"

namespace aoetron::parallel {

class Watchdog;

struct CollectiveOptions {
  // Each collective arms a deadline on this watchdog for its own duration (null: none). Not
  // owned; it must outlive every communicator that uses it.
  Watchdog* watchdog = nullptr;
  // How long one collective call may take before the watchdog ends the job. Generous by default:
  // a slow rank (a checkpoint write, a long first step) is not a hang.
  absl::Duration collective_timeout = absl::Seconds(600);
  // Before each collective, the ranks compare a fingerprint of the call (which collective, dtype,
  // element count, root or reduce op; AllToAllV also the pairwise counts) and end the job with a
  // message naming the mismatch instead of hanging or corrupting data. Costs one small extra
  // collective per call: for tests and debugging.
  bool check_agreement = false;
  // Reductions (AllReduce, ReduceScatter) run over segments of at most this many bytes, which
  // bounds their scratch memory (about twice this). Results do not depend on it.
  int64_t reduction_segment_bytes = int64_t{64} << 20;
};

}  // namespace aoetron::parallel
