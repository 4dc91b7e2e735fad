// Training samples from a raw token file: little-endian uint16 token ids, back to back, no
// header (what `aoetron-data tokenize` writes as .bin, and what llm.c's loaders read minus
// their header). The Megatron indexed-dataset pipeline (.bin + .idx, documents, blending) will
// replace this for real corpora; this source is the simple path for one pre-tokenised file.
//
// Sample j of a region [begin, end) of the file is the T + 1 tokens starting at a position drawn
// uniformly from [begin, end − T − 1] by (seed, stream, j): deterministic, with replacement,
// independent of the number of threads or of which samples were asked before.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "launcher/batch_source.h"

namespace aoetron {

// A read-only memory mapping of a token file, checked once at open. Immutable, thread-safe.
class MappedTokenFile {
 public:
  // Errors name `path`: it cannot be opened, its size is odd (not whole uint16 tokens), it is
  // empty, or a token is ≥ vocab_size (with the first offending position).
  static absl::StatusOr<std::shared_ptr<const MappedTokenFile>> Open(const std::string& path,
                                                                     int64_t vocab_size);
  ~MappedTokenFile();
  MappedTokenFile(const MappedTokenFile&) = delete;
  MappedTokenFile& operator=(const MappedTokenFile&) = delete;

  const std::string& path() const { return path_; }
  int64_t num_tokens() const { return num_tokens_; }
  // Token at `position`, converted from little-endian.
  uint16_t token(int64_t position) const;

 private:
  MappedTokenFile(std::string path, const void* data, size_t bytes);
  std::string path_;
  const void* data_;
  size_t bytes_;
  int64_t num_tokens_;
};

class TokenFileSource : public TokenBatchSource {
 public:
  // Samples come from tokens [begin, end) of `file`; `seq_len` + 1 ≤ end − begin is required
  // (MakeTokenFileSource checks it and explains).
  TokenFileSource(std::shared_ptr<const MappedTokenFile> file, int64_t begin, int64_t end,
                  int64_t seq_len, uint64_t seed, uint64_t stream);

  void FillBatch(int64_t index, Tensor& tokens, Tensor& targets) const override;

  // Where sample j starts in the file (for tests).
  int64_t SampleStart(int64_t sample) const;

 private:
  std::shared_ptr<const MappedTokenFile> file_;
  int64_t begin_, end_, seq_len_;
  uint64_t seed_, stream_;
};

// A source over [begin, end) of `file` that checks the region can hold one sample of
// seq_len + 1 tokens; `what` describes the region in the error ("the training part").
absl::StatusOr<std::unique_ptr<TokenBatchSource>> MakeTokenFileSource(
    std::shared_ptr<const MappedTokenFile> file, int64_t begin, int64_t end, int64_t seq_len,
    uint64_t seed, uint64_t stream, const std::string& what);

}  // namespace aoetron
