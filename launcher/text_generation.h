// Autoregressive generation with a KV cache: the prompt in one GptModel::Decode call, then one
// call per new token, each drawn by SampleToken (launcher/token_sampler.h). Shared by
// aoetron-generate and the trainer's sample at each evaluation (logging.sample_tokens).
#pragma once

#include <cstdint>
#include <vector>

#include "core/arena.h"
#include "launcher/token_sampler.h"
#include "models/gpt_model.h"

namespace aoetron {

// Up to `max_new` tokens after `prompt` (1 ≤ |prompt| < model.seq_len), stopping early at
// `end_of_text` (-1: none) or when the model has no position left. Collective over the model's
// groups (every rank calls it alike); every rank returns the same ids. Resets `arena`.
std::vector<int32_t> GenerateTokens(GptModel& model, const std::vector<int32_t>& prompt,
                                    int64_t max_new, const SamplingOptions& sampling,
                                    int32_t end_of_text, ActivationArena& arena);

}  // namespace aoetron
