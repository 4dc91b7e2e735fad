// Helpers of the CUDA op tests: every kernel is compared with the CPU backend on fresh random
// inputs, with its outputs poisoned first.
//
// The flow of one comparison:
//   x64  = Representable(Uniform(shape), dtype)  f64 host values exactly representable in dtype
//   xdev = Upload(x64, dtype)                    the same values on the GPU as f32 or bf16
//   CPU op on x64 (f64: the reference), CUDA op on xdev, then
//   RelativeError(Download(ydev), y64) = ‖y − ref‖₂ / ‖ref‖₂   (∞ if y holds a NaN)
// Outputs the op overwrites are filled with NaN on the device first (Poisoned), so an element
// the kernel never writes shows up as NaN and fails the comparison. Outputs the op accumulates
// into start from random values shared by both sides, so an unwritten element keeps its start
// value and misses the added gradient.
//
// Seeds: fresh each run (std::random_device), or AOETRON_TEST_SEED to replay; every test prints
// its seed in a SCOPED_TRACE.
// Skipping: CudaTest's SetUp skips the test with the reason when no GPU is visible, so the
// binary runs (and passes, all skipped) on machines without one.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

#include "core/tensor.h"

namespace aoetron::cudatest {

// Every CUDA test derives from this: skips without a GPU, makes device 0 current, draws a seed.
class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override;
  uint64_t seed() const { return seed_; }
  std::mt19937_64& rng() { return rng_; }

 private:
  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
};

// The device every test runs on.
Device Gpu();

// f64 host tensor with entries uniform in [lo, hi).
Tensor Uniform(const Shape& shape, std::mt19937_64& rng, double lo = -1.0, double hi = 1.0);
// f64 host tensor with each entry rounded to the nearest value of `dtype` (f32 or bf16; f64
// unchanged), so both sides of a comparison start from the same numbers.
Tensor Representable(const Tensor& f64, DType dtype);
// Host f64 values → a new device tensor of `dtype` (f32 or bf16; values rounded to nearest even).
Tensor Upload(const Tensor& f64, DType dtype);
// i32 host tensor → device.
Tensor UploadIndex(const Tensor& i32);
// Device tensor (f32, bf16 or i32) → host f64 tensor (i32 converted exactly).
Tensor Download(const Tensor& device);
// Device tensor of `dtype` filled with NaN (f32/bf16) or with −1 (i32).
Tensor Poisoned(const Shape& shape, DType dtype);
// Host f32 copy of an f64 host tensor (rounded), for running the CPU kernels in f32.
Tensor HostF32(const Tensor& f64);
// Copy of a host tensor.
Tensor CloneHost(const Tensor& host);

// ‖got − ref‖₂ / ‖ref‖₂ over all elements (f64 host tensors of equal size); +∞ when got holds a
// NaN or ±∞ that ref does not; 0 when both are all zero.
double RelativeError(const Tensor& got, const Tensor& ref);
// Number of elements where got[i] != ref[i] as values (a NaN never matches).
int64_t CountMismatches(const Tensor& got, const Tensor& ref);

// A uniform random i32 host tensor in [lo, hi).
Tensor RandomIndex(const Shape& shape, std::mt19937_64& rng, int32_t lo, int32_t hi);

// Host bf16 conversions (round to nearest even), for building expectations.
float RoundToBFloat16(float value);

// Reports `error` with its tolerance in the test's output (and as a test property), so the
// first runs on a GPU show how far below its bound each kernel lands.
void ReportError(const std::string& what, double error, double tolerance);

// Outputs stored in bf16 (2^-9 relative each) from bf16 inputs: the bf16 tolerance of every
// kernel test (cuda_ops_test.cc derives it).
constexpr double kBf16Tolerance = 1e-2;
inline double ToleranceFor(DType dtype, double f32_tolerance) {
  return dtype == DType::kBF16 ? kBf16Tolerance : f32_tolerance;
}
// Compares a device result with an f64 reference, reports the error, fails above the tolerance
// (ToleranceFor).
void ExpectClose(const std::string& what, DType dtype, const Tensor& got, const Tensor& ref,
                 double f32_tolerance);

}  // namespace aoetron::cudatest
