#include "models/feed_forward.h"

#include "models/dense_ffn.h"
#include "models/routed_ffn.h"

namespace aoetron {

std::unique_ptr<FeedForward> MakeFeedForward(const ModelConfig& config, int layer,
                                             ParameterSet* params,
                                             parallel::ProcessGroups& groups) {
  if (config.ffn == FfnKind::kDense) {
    return std::make_unique<DenseSwiGlu>(config, layer, params, groups);
  }
  return std::make_unique<RoutedFeedForward>(config, layer, params, groups);
}

}  // namespace aoetron
