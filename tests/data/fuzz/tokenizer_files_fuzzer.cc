// libFuzzer target: the encoder.json / vocab.bpe parsers, the JSONL field extractor and, for
// vocabularies the parser accepts, building a tokenizer and round-tripping text through it.
// Input: the bytes up to the first 0xFF separator are encoder.json, the rest vocab.bpe; the
// whole input is also tried as a JSONL line and as text to encode with a tiny vocabulary.
#include <cstdint>
#include <string>
#include <string_view>

#include "data/bpe_tokenizer.h"
#include "data/json_string.h"
#include "data/tokenizer_files.h"

using namespace aoetron::data;

namespace {

// 256 byte tokens + "ab" + "<|endoftext|>", built once.
const BpeTokenizer& TinyTokenizer() {
  static const BpeTokenizer* tokenizer = [] {
    BpeVocabulary v;
    for (int b = 0; b < 256; ++b) v.tokens.push_back(std::string(1, static_cast<char>(b)));
    v.tokens.push_back("ab");
    v.tokens.push_back("<|endoftext|>");
    v.is_special.assign(v.tokens.size(), false);
    v.is_special.back() = true;
    return BpeTokenizer::Create(std::move(v))->release();
  }();
  return *tokenizer;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t cut = input.find('\xff');
  std::string_view encoder = input.substr(0, cut);
  std::string_view merges = cut == std::string_view::npos ? "" : input.substr(cut + 1);
  auto vocab = ParseGpt2TokenizerFiles(encoder, "encoder.json", merges, "vocab.bpe");
  if (vocab.ok()) {
    auto tokenizer = BpeTokenizer::Create(*std::move(vocab));
    if (tokenizer.ok()) {
      auto ids = (*tokenizer)->Encode(input);
      auto text = (*tokenizer)->Decode(ids);
      if (!text.ok() || *text != input) __builtin_trap();
    }
  }
  std::string field;
  (void)ExtractJsonStringField(input, "text", &field);
  auto ids = TinyTokenizer().EncodeAllowingSpecial(input);
  auto back = TinyTokenizer().Decode(TinyTokenizer().Encode(input));
  if (!back.ok() || *back != input) __builtin_trap();
  (void)ids;
  return 0;
}
