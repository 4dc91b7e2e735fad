#include "data/bpe_tokenizer.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <queue>

#include "absl/strings/str_format.h"
#include "data/gpt2_pretokenizer.h"
#include "data/string_view_compat.h"
#include "data/tokenizer_files.h"

namespace aoetron::data {
namespace {

// Pieces up to this many bytes merge by linear scans over a stack array; longer ones (runs of
// whitespace or symbols, long words in unusual scripts) use a heap.
constexpr size_t kShortPieceBytes = 64;

// The per-thread cache of merged pieces: piece -> [begin, end) in `ids`. Emptied when it grows
// past kMaxEntries, so memory stays bounded (tens of MiB per thread at most).
struct MergeCache {
  static constexpr size_t kMaxEntries = 1 << 18;
  uint64_t owner = 0;
  absl::flat_hash_map<std::string, std::pair<uint32_t, uint32_t>> spans;
  std::vector<int32_t> ids;
};
thread_local MergeCache merge_cache;

std::atomic<uint64_t> next_instance_id{1};

}  // namespace

BpeTokenizer::BpeTokenizer(BpeVocabulary vocab)
    : vocab_(std::move(vocab)), instance_id_(next_instance_id++) {}

void BpeTokenizer::MergePieceCached(std::string_view piece, std::vector<int32_t>* ids) const {
  MergeCache& cache = merge_cache;
  if (cache.owner != instance_id_ || cache.spans.size() >= MergeCache::kMaxEntries) {
    cache.owner = instance_id_;
    cache.spans.clear();
    cache.ids.clear();
  }
  auto it = cache.spans.find(ToAbsl(piece));
  if (it != cache.spans.end()) {
    ids->insert(ids->end(), cache.ids.begin() + it->second.first,
                cache.ids.begin() + it->second.second);
    return;
  }
  const size_t before = ids->size();
  MergePiece(piece, ids);
  const uint32_t begin = static_cast<uint32_t>(cache.ids.size());
  cache.ids.insert(cache.ids.end(), ids->begin() + before, ids->end());
  cache.spans.emplace(ToAbsl(piece),
                      std::make_pair(begin, static_cast<uint32_t>(cache.ids.size())));
}

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::Create(BpeVocabulary vocab) {
  if (vocab.is_special.size() != vocab.tokens.size()) {
    return absl::InvalidArgumentError("BpeVocabulary: is_special and tokens differ in size");
  }
  std::unique_ptr<BpeTokenizer> t(new BpeTokenizer(std::move(vocab)));
  const BpeVocabulary& v = t->vocab_;
  t->id_of_bytes_.reserve(v.tokens.size());
  for (int32_t id = 0; id < v.size(); ++id) {
    if (v.is_special[id]) {
      t->specials_.emplace_back(v.tokens[id], id);
      if (v.tokens[id] == kEndOfTextToken) t->end_of_text_id_ = id;
    } else {
      t->id_of_bytes_.emplace(v.tokens[id], id);
    }
  }
  for (int b = 0; b < 256; ++b) {
    auto it = t->id_of_bytes_.find(std::string(1, static_cast<char>(b)));
    if (it == t->id_of_bytes_.end()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("BpeVocabulary: no token for the single byte 0x%02x", b));
    }
    t->byte_to_id_[b] = it->second;
  }
  // Every way of cutting a token into two tokens is a pair that merges into it.
  for (int32_t id = 0; id < v.size(); ++id) {
    const std::string& bytes = v.tokens[id];
    if (v.is_special[id] || bytes.size() < 2) continue;
    std::string_view view(bytes);
    for (size_t cut = 1; cut < view.size(); ++cut) {
      auto left = t->id_of_bytes_.find(ToAbsl(view.substr(0, cut)));
      if (left == t->id_of_bytes_.end()) continue;
      auto right = t->id_of_bytes_.find(ToAbsl(view.substr(cut)));
      if (right == t->id_of_bytes_.end()) continue;
      t->pair_to_merged_.emplace(PairKey(left->second, right->second), id);
    }
  }
  t->token_lookup_ = TokenLookup(
      std::vector<std::pair<std::string, int32_t>>(t->id_of_bytes_.begin(), t->id_of_bytes_.end()));
  // Longest names first, so that a special token that contains another wins.
  std::sort(t->specials_.begin(), t->specials_.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  return t;
}

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::LoadFromDirectory(
    const std::string& dir) {
  absl::StatusOr<BpeVocabulary> vocab = ReadGpt2TokenizerFiles(dir);
  if (!vocab.ok()) return vocab.status();
  return Create(*std::move(vocab));
}

void BpeTokenizer::Encode(std::string_view text, std::vector<int32_t>* ids) const {
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t end = Gpt2PieceEnd(text, pos);
    std::string_view piece = text.substr(pos, end - pos);
    pos = end;
    if (piece.size() == 1) {
      ids->push_back(byte_to_id_[static_cast<uint8_t>(piece[0])]);
      continue;
    }
    const int32_t id = token_lookup_.Find(piece);
    if (id >= 0) {
      ids->push_back(id);
    } else if (piece.size() <= kShortPieceBytes) {
      MergePieceCached(piece, ids);
    } else {
      MergeLongPiece(piece, ids);
    }
  }
}

std::vector<int32_t> BpeTokenizer::Encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  Encode(text, &ids);
  return ids;
}

void BpeTokenizer::MergePiece(std::string_view piece, std::vector<int32_t>* ids) const {
  // parts[i]: current tokens; merged[i]: the token parts[i] and parts[i+1] would merge into.
  int32_t parts[kShortPieceBytes];
  int32_t merged[kShortPieceBytes];
  size_t n = piece.size();
  for (size_t i = 0; i < n; ++i) parts[i] = byte_to_id_[static_cast<uint8_t>(piece[i])];
  for (size_t i = 0; i + 1 < n; ++i) merged[i] = MergedId(parts[i], parts[i + 1]);
  while (n > 1) {
    size_t best = SIZE_MAX;
    int32_t best_id = INT32_MAX;
    for (size_t i = 0; i + 1 < n; ++i) {
      if (merged[i] >= 0 && merged[i] < best_id) {
        best_id = merged[i];
        best = i;
      }
    }
    if (best == SIZE_MAX) break;
    parts[best] = best_id;
    std::memmove(parts + best + 1, parts + best + 2, (n - best - 2) * sizeof(int32_t));
    if (best + 2 < n) {
      std::memmove(merged + best + 1, merged + best + 2, (n - best - 3) * sizeof(int32_t));
    }
    --n;
    if (best > 0) merged[best - 1] = MergedId(parts[best - 1], parts[best]);
    if (best + 1 < n) merged[best] = MergedId(parts[best], parts[best + 1]);
  }
  ids->insert(ids->end(), parts, parts + n);
}

void BpeTokenizer::MergeLongPiece(std::string_view piece, std::vector<int32_t>* ids) const {
  // A doubly linked list of parts, one node per original byte position; a merge keeps the left
  // node and unlinks the right one. Candidate merges wait in a min-heap ordered by (merged id,
  // position); entries made stale by earlier merges are skipped when popped.
  const int32_t n = static_cast<int32_t>(piece.size());
  std::vector<int32_t> token(n), prev(n), next(n);
  for (int32_t i = 0; i < n; ++i) {
    token[i] = byte_to_id_[static_cast<uint8_t>(piece[i])];
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t merged, left, right, left_token, right_token;
    bool operator>(const Candidate& o) const {
      return merged != o.merged ? merged > o.merged : left > o.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto push = [&](int32_t left) {
    if (left < 0 || next[left] < 0) return;
    const int32_t right = next[left];
    const int32_t m = MergedId(token[left], token[right]);
    if (m >= 0) heap.push({m, left, right, token[left], token[right]});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    if (next[c.left] != c.right || token[c.left] != c.left_token ||
        token[c.right] != c.right_token) {
      continue;  // stale
    }
    token[c.left] = c.merged;
    next[c.left] = next[c.right];
    if (next[c.right] >= 0) prev[next[c.right]] = c.left;
    next[c.right] = -2;  // unlinked: never matches a candidate's `right` again
    push(prev[c.left]);
    push(c.left);
  }
  for (int32_t i = 0; i >= 0; i = next[i]) ids->push_back(token[i]);
}

std::vector<int32_t> BpeTokenizer::EncodeAllowingSpecial(std::string_view text) const {
  std::vector<int32_t> ids;
  size_t start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    if (text[pos] == '<') {
      bool matched = false;
      for (const auto& [name, id] : specials_) {
        if (text.substr(pos, name.size()) == name) {
          Encode(text.substr(start, pos - start), &ids);
          ids.push_back(id);
          pos += name.size();
          start = pos;
          matched = true;
          break;
        }
      }
      if (matched) continue;
    }
    ++pos;
  }
  Encode(text.substr(start), &ids);
  return ids;
}

absl::StatusOr<std::string> BpeTokenizer::Decode(absl::Span<const int32_t> ids) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_.size()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("Decode: id %d at position %d is outside the vocabulary [0, %d)", ids[i],
                          i, vocab_.size()));
    }
    out += vocab_.tokens[ids[i]];
  }
  return out;
}

}  // namespace aoetron::data
