// Errors found by kernels while they run, reported at the next synchronisation.
//
// The CPU ops CHECK their index operands (token ids, targets, expert indices, positions) on the
// host before a kernel reads them. On the GPU those operands live in device memory, and copying
// them to the host for a check would stall the stream at every op. Instead each kernel checks the
// entries it reads: an entry out of range is skipped (nothing outside the tensors is read or
// written; the output elements it would have produced are left unwritten) and the first such
// event is recorded in a per-device error record. DeviceContext::Synchronize() — and therefore
// every copy to the host — reads the record and ends the process with a message naming the op
// and the entry, as the CPU CHECK would have. So a bad index is still fatal; it is only reported
// at the next synchronisation instead of at the op.
//
// What the device does NOT check (stated by the op contracts as preconditions): that the
// `position` of the expert-permute ops is a bijection (BuildExpertLayout makes it one).
#pragma once

#include <cstdint>

namespace aoetron::cuda {

enum class DeviceErrorCode : int32_t {
  kNone = 0,
  kEmbeddingIdOutOfRange = 1,  // detail: the flat index of the bad id
  kTargetOutOfRange = 2,       // detail: the row whose target is ≥ vocab
  kNanScore = 3,               // detail: the flat index of the NaN score
  kTopKIndexOutOfRange = 4,    // detail: the flat index into `indices`
  kPositionOutOfRange = 5,     // detail: the flat index into `position`
  kExpertIndexOutOfRange = 6,  // detail: the flat index into `expert_index`
  kRowIndexOutOfRange = 7,     // detail: the flat index into a row-move's row index
};

// Lives in device memory; written by kernels with an atomic compare-and-swap so the first error
// wins and later ones do not overwrite its detail.
struct DeviceErrorRecord {
  int32_t code;      // a DeviceErrorCode
  int32_t reserved;  // keeps detail 8-byte aligned
  int64_t detail;
};

// "embedding id out of range" etc., for messages.
const char* DeviceErrorText(DeviceErrorCode code);

}  // namespace aoetron::cuda
