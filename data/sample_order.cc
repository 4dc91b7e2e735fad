#include "data/sample_order.h"

#include "absl/strings/str_format.h"

namespace aoetron::data {

const char* SampleOrderName(SampleOrder order) {
  return order == SampleOrder::kMegatronCore ? "megatron_core" : "aoetron_v1";
}

int SampleOrderVersion(SampleOrder order) { return order == SampleOrder::kMegatronCore ? 2 : 1; }

absl::StatusOr<SampleOrder> SampleOrderOfVersion(int64_t version) {
  if (version == 2) return SampleOrder::kMegatronCore;
  if (version == 1) return SampleOrder::kAoetronV1;
  return absl::InvalidArgumentError(absl::StrFormat(
      "unknown data sample order version %d (this build knows 1 = aoetron_v1 and 2 = "
      "megatron_core)",
      version));
}

}  // namespace aoetron::data
