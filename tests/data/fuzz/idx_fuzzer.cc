// libFuzzer target: the Megatron .idx/.bin validation (IndexedDataset::FromFiles) and, for
// inputs it accepts, reading every token. Input: 2 bytes of .bin length (little-endian), the
// .bin bytes, the rest is the .idx.
// Invariant checked: accepted datasets are self-consistent, so reads never leave the buffers
// (AddressSanitizer) and never trip the reader's own checks.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "data/indexed_dataset.h"

using aoetron::data::IndexedDataset;
using aoetron::data::MappedFile;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  size_t bin_size = data[0] | (size_t{data[1]} << 8);
  data += 2;
  size -= 2;
  if (bin_size > size) bin_size = size;
  std::string bin(reinterpret_cast<const char*>(data), bin_size);
  std::string idx(reinterpret_cast<const char*>(data) + bin_size, size - bin_size);
  auto ds = IndexedDataset::FromFiles("fuzz", MappedFile::FromBytes("fuzz.idx", std::move(idx)),
                                      MappedFile::FromBytes("fuzz.bin", std::move(bin)));
  if (!ds.ok()) return 0;
  (void)(*ds)->CheckTokens(50257, /*allow_empty_sequences=*/true);
  std::vector<int32_t> tokens;
  for (int64_t s = 0; s < (*ds)->num_sequences(); ++s) {
    tokens.resize((*ds)->sequence_length(s));
    (*ds)->ReadTokens(s, 0, (*ds)->sequence_length(s), tokens.data());
  }
  for (int64_t d = 0; d <= (*ds)->num_documents(); ++d) (void)(*ds)->document_index(d);
  return 0;
}
