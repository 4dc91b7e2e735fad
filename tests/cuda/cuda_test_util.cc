#include "tests/cuda/cuda_test_util.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>

#include "core/device_transfer.h"
#include "core/ops/elementwise.h"

namespace aoetron::cudatest {
namespace {

uint16_t BFloat16Bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if (std::isnan(value)) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7FFF + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

float FromBFloat16Bits(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &wide, sizeof(value));
  return value;
}

}  // namespace

void CudaTest::SetUp() {
  if (CudaDeviceCount() == 0) {
    GTEST_SKIP() << "no GPU visible: " << NoCudaDeviceReason();
  }
  SetCudaDevice(0);
  if (const char* fixed = std::getenv("AOETRON_TEST_SEED")) {
    seed_ = std::strtoull(fixed, nullptr, 10);
  } else {
    seed_ = (static_cast<uint64_t>(std::random_device{}()) << 32) | std::random_device{}();
  }
  rng_.seed(seed_);
  std::cout << "[ seed     ] AOETRON_TEST_SEED=" << seed_ << std::endl;
}

Device Gpu() { return Device::Cuda(0); }

float RoundToBFloat16(float value) { return FromBFloat16Bits(BFloat16Bits(value)); }

Tensor Uniform(const Shape& shape, std::mt19937_64& rng, double lo, double hi) {
  Tensor t = Tensor::Empty(shape, DType::kF64);
  std::uniform_real_distribution<double> dist(lo, hi);
  double* data = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) data[i] = dist(rng);
  return t;
}

Tensor Representable(const Tensor& f64, DType dtype) {
  Tensor out = CloneHost(f64);
  double* data = out.data<double>();
  for (int64_t i = 0; i < out.numel(); ++i) {
    if (dtype == DType::kF32) data[i] = static_cast<float>(data[i]);
    if (dtype == DType::kBF16) data[i] = RoundToBFloat16(static_cast<float>(data[i]));
  }
  return out;
}

Tensor Upload(const Tensor& f64, DType dtype) {
  Tensor host = Tensor::Empty(f64.shape(), dtype);
  const double* src = f64.data<double>();
  for (int64_t i = 0; i < f64.numel(); ++i) {
    if (dtype == DType::kF32) {
      host.data<float>()[i] = static_cast<float>(src[i]);
    } else {
      EXPECT_EQ(dtype, DType::kBF16);
      host.data<BFloat16>()[i] = BFloat16{BFloat16Bits(static_cast<float>(src[i]))};
    }
  }
  return CopyToDevice(host, Gpu());
}

Tensor UploadIndex(const Tensor& i32) { return CopyToDevice(i32, Gpu()); }

Tensor Download(const Tensor& device) {
  Tensor host = Tensor::Empty(device.shape(), device.dtype());
  CopyAcrossDevices(device, host);
  Tensor out = Tensor::Empty(device.shape(), DType::kF64);
  double* dst = out.data<double>();
  for (int64_t i = 0; i < host.numel(); ++i) {
    switch (host.dtype()) {
      case DType::kF32:
        dst[i] = host.data<float>()[i];
        break;
      case DType::kBF16:
        dst[i] = FromBFloat16Bits(host.data<BFloat16>()[i].bits);
        break;
      case DType::kI32:
        dst[i] = host.data<int32_t>()[i];
        break;
      case DType::kF64:
        dst[i] = host.data<double>()[i];
        break;
      default:
        ADD_FAILURE() << "Download: unexpected " << host.DebugString();
    }
  }
  return out;
}

Tensor Poisoned(const Shape& shape, DType dtype) {
  Tensor t = Tensor::Empty(shape, dtype, Gpu());
  ops::Fill(t, dtype == DType::kI32 ? -1.0 : std::numeric_limits<double>::quiet_NaN());
  return t;
}

Tensor HostF32(const Tensor& f64) {
  Tensor out = Tensor::Empty(f64.shape(), DType::kF32);
  for (int64_t i = 0; i < f64.numel(); ++i) {
    out.data<float>()[i] = static_cast<float>(f64.data<double>()[i]);
  }
  return out;
}

Tensor CloneHost(const Tensor& host) {
  Tensor out = Tensor::Empty(host.shape(), host.dtype());
  if (host.nbytes() > 0) std::memcpy(out.raw_data(), host.raw_data(), host.nbytes());
  return out;
}

double RelativeError(const Tensor& got, const Tensor& ref) {
  EXPECT_EQ(got.numel(), ref.numel());
  const double* g = got.data<double>();
  const double* r = ref.data<double>();
  double diff = 0.0, norm = 0.0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    if (!std::isfinite(g[i]) && std::isfinite(r[i])) return std::numeric_limits<double>::infinity();
    diff += (g[i] - r[i]) * (g[i] - r[i]);
    norm += r[i] * r[i];
  }
  if (norm == 0.0) return diff == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
  return std::sqrt(diff / norm);
}

int64_t CountMismatches(const Tensor& got, const Tensor& ref) {
  EXPECT_EQ(got.numel(), ref.numel());
  int64_t mismatches = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    if (!(got.data<double>()[i] == ref.data<double>()[i])) ++mismatches;
  }
  return mismatches;
}

Tensor RandomIndex(const Shape& shape, std::mt19937_64& rng, int32_t lo, int32_t hi) {
  Tensor t = Tensor::Empty(shape, DType::kI32);
  std::uniform_int_distribution<int32_t> dist(lo, hi - 1);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int32_t>()[i] = dist(rng);
  return t;
}

void ReportError(const std::string& what, double error, double tolerance) {
  std::cout << "[ error    ] " << what << ": " << error << " (tolerance " << tolerance << ")"
            << std::endl;
  ::testing::Test::RecordProperty(what, std::to_string(error));
}

void ExpectClose(const std::string& what, DType dtype, const Tensor& got, const Tensor& ref,
                 double f32_tolerance) {
  const double tolerance = ToleranceFor(dtype, f32_tolerance);
  const double error = RelativeError(Download(got), ref);
  const std::string name = what + " " + std::string(DTypeName(dtype));
  ReportError(name, error, tolerance);
  EXPECT_LE(error, tolerance) << name;
}

}  // namespace aoetron::cudatest
