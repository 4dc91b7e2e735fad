// Total parameters of a model from its shape alone (the names and shapes of models/gpt_model.h),
// for the study's plan and report: every tensor counted once, whatever the parallel layout.
//
// Thread safety: a pure function.
#pragma once

#include <cstdint>

#include "models/model_config.h"

namespace aoetron::study {

// Embedding V·d + LM head d·V + final norm d + per layer: two norms 2d, attention 4d², and the
// FFN: dense 3·d·d_ffn; router MoE d·n + n·3·d·w; AoE d·n·r + n·(r + 2d)·d_wide; plus shared
// experts 3·d·(S·d_shared) and the expert bias n (not trained, but saved) when
// expert_bias_rate > 0. n is the routed experts the layers see (granularity applied).
int64_t TotalParameters(const ModelConfig& model);

}  // namespace aoetron::study
