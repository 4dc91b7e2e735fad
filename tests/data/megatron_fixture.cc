#include "tests/data/megatron_fixture.h"

#include "tests/data/test_paths.h"

namespace aoetron::data::testing {
namespace {

void PutLE(std::string* out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

int ItemSize(uint8_t code) {
  switch (code) {
    case 1:
    case 2:
      return 1;
    case 3:
    case 8:
      return 2;
    case 4:
      return 4;
    default:
      return 8;
  }
}

}  // namespace

std::string MegatronFixture::IdxBytes() const {
  std::string idx("MMIDIDX\0\0", 9);
  PutLE(&idx, 1, 8);           // version
  PutLE(&idx, dtype_code, 1);  // dtype
  PutLE(&idx, sequences.size(), 8);
  PutLE(&idx, document_indices.size(), 8);
  for (const auto& s : sequences) PutLE(&idx, s.size(), 4);  // int32 lengths
  uint64_t pointer = 0;
  for (const auto& s : sequences) {  // int64 byte offsets
    PutLE(&idx, pointer, 8);
    pointer += s.size() * ItemSize(dtype_code);
  }
  for (int64_t d : document_indices) PutLE(&idx, static_cast<uint64_t>(d), 8);
  return idx;
}

std::string MegatronFixture::BinBytes() const {
  std::string bin;
  for (const auto& s : sequences) {
    for (int64_t t : s) PutLE(&bin, static_cast<uint64_t>(t), ItemSize(dtype_code));
  }
  return bin;
}

void MegatronFixture::Write(const std::string& prefix) const {
  WriteFile(prefix + ".idx", IdxBytes());
  WriteFile(prefix + ".bin", BinBytes());
}

MegatronFixture SmallMegatronFixture() {
  MegatronFixture f;
  f.dtype_code = 8;
  f.sequences = {{15496, 11, 995}, {314, 1101, 50256}, {7, 65535, 0, 42}};
  f.document_indices = {0, 2, 3};
  return f;
}

}  // namespace aoetron::data::testing
