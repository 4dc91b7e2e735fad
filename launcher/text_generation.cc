#include "launcher/text_generation.h"

#include <algorithm>
#include <span>

#include "core/check.h"

namespace aoetron {

std::vector<int32_t> GenerateTokens(GptModel& model, const std::vector<int32_t>& prompt,
                                    int64_t max_new, const SamplingOptions& sampling,
                                    int32_t end_of_text, ActivationArena& arena) {
  const int64_t prompt_length = static_cast<int64_t>(prompt.size());
  const int64_t seq_len = model.config().seq_len, vocab = model.config().vocab_size;
  AOETRON_CHECK(prompt_length >= 1 && prompt_length < seq_len)
      << "GenerateTokens: a prompt of " << prompt_length << " tokens for model.seq_len " << seq_len;
  std::vector<int32_t> generated;
  if (max_new <= 0) return generated;
  // The last new token is never fed back, so the cache holds prompt + max_new − 1 positions.
  const int64_t capacity = std::min<int64_t>(seq_len, prompt_length + max_new - 1);
  GptModel::KvCache cache = model.NewKvCache(1, std::max<int64_t>(capacity, prompt_length));
  generated.reserve(max_new);  // `input` may point into it: no reallocation
  Tensor input = Tensor::Wrap(const_cast<int32_t*>(prompt.data()), {1, prompt_length}, DType::kI32);
  while (static_cast<int64_t>(generated.size()) < max_new) {
    const Tensor logits = model.Decode(input, cache, arena);
    const int32_t next = SampleToken(std::span<const float>(logits.data<float>(), vocab), sampling,
                                     static_cast<int64_t>(generated.size()));
    generated.push_back(next);
    if (next == end_of_text || cache.length >= cache.capacity) break;
    input = Tensor::Wrap(&generated.back(), {1, 1}, DType::kI32);
  }
  return generated;
}

}  // namespace aoetron
