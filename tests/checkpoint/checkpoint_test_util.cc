#include "tests/checkpoint/checkpoint_test_util.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/rng.h"

namespace aoetron::checkpoint::testing {

ScratchDirectory::ScratchDirectory(const std::string& tag) {
  const char* tmp = std::getenv("TMPDIR");
  std::string base = (tmp && *tmp) ? tmp : "/tmp";
  std::string pattern = base + "/aoetron_ckpt_" + tag + "_XXXXXX";
  char* made = ::mkdtemp(pattern.data());
  AOETRON_CHECK(made != nullptr) << "mkdtemp " << pattern << ": " << std::strerror(errno);
  path_ = made;
}

ScratchDirectory::~ScratchDirectory() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

double ElementValue(const std::string& name, int64_t flat, int64_t version) {
  // Halves of integers below 2^15: exact in f32 and f64 (bf16 and the integer types derive
  // theirs in FillValue).
  const uint64_t h = StableHash(name) % 997;
  return static_cast<double>(h + static_cast<uint64_t>(flat) % 1021 + 1000 * version) / 2.0;
}

namespace {

// bf16 holds 8 significant bits: reduce the value to a small integer so the round trip is exact.
uint16_t Bf16Of(double v) {
  const float f = static_cast<float>(static_cast<int64_t>(v) % 128);
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return static_cast<uint16_t>(bits >> 16);
}

void FillValue(Tensor& t, int64_t i, double v) {
  switch (t.dtype()) {
    case DType::kF32:
      t.data<float>()[i] = static_cast<float>(v);
      break;
    case DType::kF64:
      t.data<double>()[i] = v;
      break;
    case DType::kBF16:
      t.data<BFloat16>()[i].bits = Bf16Of(v);
      break;
    case DType::kI32:
      t.data<int32_t>()[i] = static_cast<int32_t>(2 * v);
      break;
    case DType::kI64:
      t.data<int64_t>()[i] = static_cast<int64_t>(2 * v) * 1000003;
      break;
    case DType::kU16:
      t.data<uint16_t>()[i] = static_cast<uint16_t>(static_cast<int64_t>(2 * v) % 65536);
      break;
  }
}

// Flat global indices of a box's elements, in the box's row-major order.
std::vector<int64_t> GlobalIndices(const TensorBox& box) {
  const Region& r = box.region;
  std::vector<int64_t> out(RegionElements(r));
  std::vector<int64_t> index(r.shape.size(), 0);
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t flat = 0;
    for (size_t d = 0; d < r.shape.size(); ++d) {
      flat = flat * box.global_shape[d] + r.offset[d] + index[d];
    }
    out[i] = flat;
    for (int d = static_cast<int>(index.size()) - 1; d >= 0; --d) {
      if (++index[d] < r.shape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

}  // namespace

Tensor MakeBox(const TensorBox& box, int64_t version) {
  Tensor t = Tensor::Empty(box.region.shape, box.dtype);
  const std::vector<int64_t> flat = GlobalIndices(box);
  for (size_t i = 0; i < flat.size(); ++i) {
    FillValue(t, static_cast<int64_t>(i), ElementValue(box.name, flat[i], version));
  }
  return t;
}

::testing::AssertionResult HoldsBox(const Tensor& t, const TensorBox& box, int64_t version) {
  const Tensor expected = MakeBox(box, version);
  if (t.numel() != expected.numel() || t.dtype() != expected.dtype()) {
    return ::testing::AssertionFailure() << box.name << ": got " << t.DebugString();
  }
  const size_t element = SizeOf(t.dtype());
  const auto* a = static_cast<const uint8_t*>(t.raw_data());
  const auto* b = static_cast<const uint8_t*>(expected.raw_data());
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (std::memcmp(a + i * element, b + i * element, element) != 0) {
      return ::testing::AssertionFailure()
             << box.name << " " << RegionToString(box.region) << ": element " << i
             << " differs from version " << version;
    }
  }
  return ::testing::AssertionSuccess();
}

SaveItem MakeItem(const TensorBox& box, int64_t version, bool write, pb::TensorKind kind) {
  return SaveItem{box, kind, MakeBox(box, version), write};
}

TensorBox RowsBox(const std::string& name, const Shape& global, int64_t begin, int64_t end,
                  DType dtype) {
  Region r = WholeRegion(global);
  r.offset[0] = begin;
  r.shape[0] = end - begin;
  return TensorBox{name, dtype, global, r};
}

TensorBox ColumnsBox(const std::string& name, const Shape& global, int64_t begin, int64_t end,
                     DType dtype) {
  Region r = WholeRegion(global);
  r.offset[1] = begin;
  r.shape[1] = end - begin;
  return TensorBox{name, dtype, global, r};
}

TensorBox WholeBox(const std::string& name, const Shape& global, DType dtype) {
  return TensorBox{name, dtype, global, WholeRegion(global)};
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
}

}  // namespace aoetron::checkpoint::testing
