#include "data/bpe_trainer.h"

#include <omp.h>

#include <algorithm>
#include <queue>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "data/byte_unicode.h"
#include "data/gpt2_pretokenizer.h"
#include "data/string_view_compat.h"

namespace aoetron::data {
namespace {

using PieceCounts = absl::flat_hash_map<std::string, int64_t>;

PieceCounts CountPieces(const std::vector<std::string>& texts, int threads) {
  std::vector<PieceCounts> partial(static_cast<size_t>(threads));
#pragma omp parallel num_threads(threads)
  {
    PieceCounts& mine = partial[static_cast<size_t>(omp_get_thread_num())];
#pragma omp for schedule(dynamic, 1)
    for (size_t d = 0; d < texts.size(); ++d) {
      std::string_view text(texts[d]);
      size_t pos = 0;
      while (pos < text.size()) {
        const size_t end = Gpt2PieceEnd(text, pos);
        ++mine[ToAbsl(text.substr(pos, end - pos))];
        pos = end;
      }
    }
  }
  PieceCounts total = std::move(partial[0]);
  for (size_t t = 1; t < partial.size(); ++t) {
    for (auto& [piece, count] : partial[t]) total[piece] += count;
  }
  return total;
}

uint64_t Key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

struct Word {
  std::vector<int32_t> symbols;
  int64_t count;
};

}  // namespace

absl::StatusOr<BpeVocabulary> TrainBpe(const std::vector<std::string>& texts,
                                       const BpeTrainerOptions& options) {
  if (options.vocab_size < 257) {
    return absl::InvalidArgumentError(
        absl::StrFormat("vocab_size %d < 257 (256 bytes + <|endoftext|>)", options.vocab_size));
  }
  const int threads = options.num_threads > 0 ? options.num_threads : omp_get_num_procs();
  BpeVocabulary vocab;
  int32_t byte_id[256];
  for (int rank = 0; rank < 256; ++rank) {
    const uint8_t b = ByteAtRank(rank);
    byte_id[b] = rank;
    vocab.tokens.push_back(std::string(1, static_cast<char>(b)));
  }
  absl::flat_hash_map<std::string, int32_t> id_of_bytes;
  for (int32_t id = 0; id < 256; ++id) id_of_bytes[vocab.tokens[id]] = id;

  // Words, sorted by bytes so that the result does not depend on hash-map order.
  PieceCounts counts = CountPieces(texts, threads);
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  counts.clear();
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (auto& [piece, count] : sorted) {
    if (piece.size() < 2) continue;  // nothing to merge
    Word w{{}, count};
    for (char c : piece) w.symbols.push_back(byte_id[static_cast<uint8_t>(c)]);
    words.push_back(std::move(w));
  }
  sorted.clear();

  absl::flat_hash_map<uint64_t, int64_t> pair_count;
  absl::flat_hash_map<uint64_t, std::vector<int32_t>> pair_words;
  for (int32_t w = 0; w < static_cast<int32_t>(words.size()); ++w) {
    const auto& s = words[w].symbols;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const uint64_t k = Key(s[i], s[i + 1]);
      pair_count[k] += words[w].count;
      auto& list = pair_words[k];
      if (list.empty() || list.back() != w) list.push_back(w);
    }
  }
  // Max-heap of (count, -left, -right): most frequent first, then lowest ids.
  using Entry = std::tuple<int64_t, int64_t, int64_t>;
  std::priority_queue<Entry> heap;
  auto push = [&](uint64_t k) {
    auto it = pair_count.find(k);
    if (it == pair_count.end() || it->second <= 0) return;
    heap.emplace(it->second, -static_cast<int64_t>(k >> 32), -static_cast<int64_t>(k & 0xFFFFFFFF));
  };
  for (const auto& [k, c] : pair_count) push(k);

  const int32_t max_ordinary = options.vocab_size - 1;  // the last id is <|endoftext|>
  absl::flat_hash_set<uint64_t> touched;
  while (static_cast<int32_t>(vocab.tokens.size()) < max_ordinary && !heap.empty()) {
    const auto [count, neg_left, neg_right] = heap.top();
    heap.pop();
    const int32_t left = static_cast<int32_t>(-neg_left);
    const int32_t right = static_cast<int32_t>(-neg_right);
    const uint64_t key = Key(left, right);
    auto current = pair_count.find(key);
    if (current == pair_count.end() || current->second != count) continue;  // stale
    if (count < 2) break;
    // The merged token; a byte string made before by another pair reuses its id.
    std::string bytes = vocab.tokens[left] + vocab.tokens[right];
    int32_t merged;
    auto existing = id_of_bytes.find(bytes);
    if (existing != id_of_bytes.end()) {
      merged = existing->second;
    } else {
      merged = static_cast<int32_t>(vocab.tokens.size());
      id_of_bytes.emplace(bytes, merged);
      vocab.tokens.push_back(std::move(bytes));
      vocab.merges.emplace_back(left, right);
    }
    std::vector<int32_t> affected = std::move(pair_words[key]);
    pair_words.erase(key);
    touched.clear();
    for (int32_t w : affected) {
      auto& s = words[w].symbols;
      const int64_t c = words[w].count;
      bool has = false;
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        if (s[i] == left && s[i + 1] == right) {
          has = true;
          break;
        }
      }
      if (!has) continue;
      // Remove this word's pairs, merge, add its pairs back.
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const uint64_t k = Key(s[i], s[i + 1]);
        pair_count[k] -= c;
        touched.insert(k);
      }
      size_t out = 0;
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == left && s[i + 1] == right) {
          s[out++] = merged;
          i += 2;
        } else {
          s[out++] = s[i++];
        }
      }
      s.resize(out);
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const uint64_t k = Key(s[i], s[i + 1]);
        pair_count[k] += c;
        touched.insert(k);
        if (k != key) {
          auto& list = pair_words[k];
          if (list.empty() || list.back() != w) list.push_back(w);
        }
      }
    }
    pair_count.erase(key);
    std::vector<uint64_t> changed(touched.begin(), touched.end());
    std::sort(changed.begin(), changed.end());
    for (uint64_t k : changed) {
      if (k == key) continue;
      auto it = pair_count.find(k);
      if (it != pair_count.end() && it->second <= 0) {
        pair_count.erase(it);
        pair_words.erase(k);
      } else {
        push(k);
      }
    }
  }
  vocab.tokens.push_back(kEndOfTextToken);
  vocab.is_special.assign(vocab.tokens.size(), false);
  vocab.is_special.back() = true;
  return vocab;
}

}  // namespace aoetron::data
