// Round trips and error reporting of core/tensor_bundle.h. The byte-layout test pins the format
// that tests/parity/tensor_bundle.py reads and writes.
#include "core/tensor_bundle.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace aoetron {
namespace {

std::string TempPath(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return (std::filesystem::temp_directory_path() /
          (std::string("aoetron_bundle_") + info->name() + "_" + name))
      .string();
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

template <typename T>
Tensor Iota(Shape shape, DType dtype, T start) {
  Tensor t = Tensor::Empty(std::move(shape), dtype);
  T* p = t.data<T>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = start + static_cast<T>(i);
  return t;
}

NamedTensors SampleTensors() {
  NamedTensors tensors;
  tensors.emplace_back("layers.0.ffn.w_down", Iota<float>({3, 4}, DType::kF32, -1.5f));
  tensors.emplace_back("loss", Iota<double>({}, DType::kF64, 4.25));  // rank 0: one element
  tensors.emplace_back("tokens", Iota<int32_t>({2, 3}, DType::kI32, -7));
  tensors.emplace_back("counts", Iota<int64_t>({5}, DType::kI64, int64_t{1} << 40));
  tensors.emplace_back("empty", Tensor::Empty({0, 3}, DType::kF32));
  tensors.emplace_back("ünïcode name", Iota<float>({1, 1, 2}, DType::kF32, 0.0f));
  return tensors;
}

TEST(TensorBundleTest, RoundTripKeepsNamesOrderShapesDtypesAndBits) {
  const std::string path = TempPath("roundtrip.aoetb");
  const NamedTensors written = SampleTensors();
  ASSERT_TRUE(WriteTensorBundle(path, written).ok());
  absl::StatusOr<NamedTensors> read = ReadTensorBundle(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), written.size());
  for (size_t i = 0; i < written.size(); ++i) {
    const auto& [name, tensor] = written[i];
    SCOPED_TRACE(name);
    EXPECT_EQ((*read)[i].first, name);
    const Tensor& got = (*read)[i].second;
    EXPECT_EQ(got.dtype(), tensor.dtype());
    EXPECT_EQ(got.shape(), tensor.shape());
    ASSERT_EQ(got.nbytes(), tensor.nbytes());
    if (tensor.nbytes() > 0) {
      EXPECT_EQ(std::memcmp(got.raw_data(), tensor.raw_data(), tensor.nbytes()), 0);
    }
  }
  std::filesystem::remove(path);
}

TEST(TensorBundleTest, ByteLayoutIsTheDocumentedFormat) {
  const std::string path = TempPath("layout.aoetb");
  NamedTensors tensors;
  Tensor t = Tensor::Empty({2}, DType::kF32);
  t.data<float>()[0] = 1.0f;
  t.data<float>()[1] = -2.0f;
  tensors.emplace_back("ab", t);
  ASSERT_TRUE(WriteTensorBundle(path, tensors).ok());

  std::string expected("AOETB1\0\0", 8);
  auto append = [&expected](const void* p, size_t n) {
    expected.append(static_cast<const char*>(p), n);
  };
  const uint32_t count = 1, name_len = 2, rank = 1;
  const uint8_t code = 0;
  const int64_t dim = 2;
  const float values[2] = {1.0f, -2.0f};
  append(&count, 4);
  append(&name_len, 4);
  expected += "ab";
  append(&code, 1);
  append(&rank, 4);
  append(&dim, 8);
  append(values, 8);
  EXPECT_EQ(ReadBytes(path), expected);
  std::filesystem::remove(path);
}

TEST(TensorBundleTest, EveryTruncationIsDataLossNamingFileAndOffset) {
  const std::string path = TempPath("full.aoetb");
  ASSERT_TRUE(WriteTensorBundle(path, SampleTensors()).ok());
  const std::string bytes = ReadBytes(path);
  const std::string cut = TempPath("cut.aoetb");
  for (size_t n = 0; n < bytes.size(); ++n) {
    WriteBytes(cut, bytes.substr(0, n));
    absl::StatusOr<NamedTensors> read = ReadTensorBundle(cut);
    ASSERT_FALSE(read.ok()) << "prefix of " << n << " bytes was accepted";
    EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss) << read.status();
    EXPECT_NE(read.status().message().find(cut), std::string::npos) << read.status();
    EXPECT_NE(read.status().message().find("byte offset"), std::string::npos) << read.status();
  }
  std::filesystem::remove(path);
  std::filesystem::remove(cut);
}

TEST(TensorBundleTest, BadMagicTrailingBytesAndUnknownDtypeAreRejected) {
  const std::string path = TempPath("bad.aoetb");
  ASSERT_TRUE(WriteTensorBundle(path, SampleTensors()).ok());
  const std::string good = ReadBytes(path);

  std::string bad_magic = good;
  bad_magic[5] = '2';
  WriteBytes(path, bad_magic);
  absl::StatusOr<NamedTensors> read = ReadTensorBundle(path);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find("bad magic at byte offset 0"), std::string::npos)
      << read.status();

  WriteBytes(path, good + "x");
  read = ReadTensorBundle(path);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find("trailing"), std::string::npos) << read.status();

  // The first tensor's dtype byte sits after magic, count, name length and the name.
  std::string bad_code = good;
  const size_t code_offset = 8 + 4 + 4 + std::strlen("layers.0.ffn.w_down");
  bad_code[code_offset] = 9;
  WriteBytes(path, bad_code);
  read = ReadTensorBundle(path);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find("unknown dtype code 9 at byte offset " +
                                         std::to_string(code_offset)),
            std::string::npos)
      << read.status();
  std::filesystem::remove(path);
}

TEST(TensorBundleTest, WriteRejectsUnsupportedDtypeDuplicatesAndUndefined) {
  const std::string path = TempPath("reject.aoetb");
  NamedTensors bf16;
  bf16.emplace_back("w", Tensor::Empty({2}, DType::kBF16));
  EXPECT_EQ(WriteTensorBundle(path, bf16).code(), absl::StatusCode::kInvalidArgument);

  NamedTensors twice;
  twice.emplace_back("w", Tensor::Zeros({2}, DType::kF32));
  twice.emplace_back("w", Tensor::Zeros({2}, DType::kF32));
  EXPECT_EQ(WriteTensorBundle(path, twice).code(), absl::StatusCode::kInvalidArgument);

  NamedTensors undefined;
  undefined.emplace_back("w", Tensor());
  EXPECT_EQ(WriteTensorBundle(path, undefined).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(TensorBundleTest, MissingFileIsNotFound) {
  EXPECT_EQ(ReadTensorBundle(TempPath("does_not_exist.aoetb")).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace aoetron
