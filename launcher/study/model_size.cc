#include "launcher/study/model_size.h"

namespace aoetron::study {

int64_t TotalParameters(const ModelConfig& m) {
  const int64_t d = m.d_model, n = m.n_experts;
  int64_t ffn = 0;
  switch (m.ffn) {
    case FfnKind::kDense:
      ffn = 3 * d * m.d_ffn;
      break;
    case FfnKind::kRouterMoe:
      ffn = d * n + n * 3 * d * m.SwiGluExpertWidth();
      break;
    case FfnKind::kAoe:
      ffn = d * n * m.d_low + n * (m.d_low + 2 * d) * m.ResolvedDWide();
      break;
  }
  if (m.is_moe()) {
    ffn += 3 * d * m.SharedWidth();
    if (m.has_expert_bias()) ffn += n;
  }
  const int64_t per_layer = 2 * d + 4 * d * d + ffn;
  return 2 * m.vocab_size * d + d + m.n_layers * per_layer;
}

}  // namespace aoetron::study
