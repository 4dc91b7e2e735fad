// Megatron-LM's indexed dataset format ("MMIDIDX", version 1), as written by its
// tools/preprocess_data.py and read by megatron/core/datasets/indexed_dataset.py.
//
// A dataset is a pair of files with a common path prefix:
//   <prefix>.bin   the token ids of all sequences back to back, no header, little-endian,
//                  each token in the element type named by the .idx
//   <prefix>.idx   byte offset  size            field
//                  0            9               magic "MMIDIDX\0\0"
//                  9            8  u64          version = 1
//                  17           1  u8           dtype code (table below)
//                  18           8  u64          S = sequence count
//                  26           8  u64          D = document count (entries of document_indices)
//                  34           4·S  i32[S]     sequence_lengths: tokens per sequence
//                  34+4S        8·S  i64[S]     sequence_pointers: byte offset of each sequence
//                                               in .bin (pointer[0] = 0, pointer[i+1] =
//                                               pointer[i] + length[i]·itemsize)
//                  34+12S       8·D  i64[D]     document_indices: sequence index where each
//                                               document starts, beginning with 0 and ending
//                                               with S (so D = documents + 1)
// The arrays start at unaligned offsets (34 is not a multiple of 4): read them with memcpy.
//
// dtype codes: 1 u8, 2 i8, 3 i16, 4 i32, 5 i64, 6 f64, 7 f32, 8 u16. Megatron writes u16 when
// the vocabulary has fewer than 65500 tokens, else i32; floats are not token types.
//
// A "sequence" is what a GPT sample is cut from (Megatron's GPTDataset splits and samples by
// sequence); a "document" groups sequences (sentence splitting gives several per document). Our
// writer stores one sequence per document.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace aoetron::data {

inline constexpr char kMmidxMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
inline constexpr uint64_t kMmidxVersion = 1;
inline constexpr size_t kMmidxHeaderBytes = 34;

enum class TokenDType : uint8_t {
  kUInt8 = 1,
  kInt8 = 2,
  kInt16 = 3,
  kInt32 = 4,
  kInt64 = 5,
  kFloat64 = 6,
  kFloat32 = 7,
  kUInt16 = 8,
};

// Bytes per element, or 0 for a code outside the table.
size_t TokenDTypeSize(uint8_t code);
// True for the integer codes a token stream may use (1, 2, 3, 4, 5, 8).
bool IsTokenDType(uint8_t code);
const char* TokenDTypeName(uint8_t code);
// Megatron's choice: u16 when vocab_size < 65500, else i32.
TokenDType TokenDTypeForVocab(int64_t vocab_size);

// Unaligned little-endian load (the machines we run on are little-endian).
template <typename T>
inline T LoadUnaligned(const void* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace aoetron::data
