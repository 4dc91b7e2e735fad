// SampleOrder: the rules that decide which samples a run reads, and in which order.
//
//   kMegatronCore  Megatron-Core's (megatron/core/datasets: GPTDataset, BlendedDataset,
//                  BlendedMegatronDatasetBuilder; docs/data.md names the version): numpy's
//                  RandomState(seed) shuffles, all epochs' documents shuffled together with a
//                  separate last epoch when it is short, Megatron-Core's split rounding,
//                  ceil(ceil(N·w)·1.005) samples asked of each blended dataset. The default:
//                  a run here reads the samples a Megatron-Core run reads.
//   kAoetronV1     this project's order before it matched Megatron-Core: mt19937_64 shuffles
//                  per epoch, the legacy split rule, exact per-dataset counts in a blend. Kept
//                  only so that runs started under it resume on the same samples.
//
// Checkpoints record the order's version (1 = kAoetronV1, 2 = kMegatronCore; a checkpoint
// without one predates the record and was written under kAoetronV1), and a resume under
// another order is refused (launcher/trainer.cc) instead of silently reading other data.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace aoetron::data {

enum class SampleOrder { kMegatronCore, kAoetronV1 };

// "megatron_core" | "aoetron_v1": the names data.sample_order takes.
const char* SampleOrderName(SampleOrder order);
// 2 for kMegatronCore, 1 for kAoetronV1.
int SampleOrderVersion(SampleOrder order);
// The order with this version; InvalidArgument for an unknown one.
absl::StatusOr<SampleOrder> SampleOrderOfVersion(int64_t version);

}  // namespace aoetron::data
