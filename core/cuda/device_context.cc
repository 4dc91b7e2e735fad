#include "core/cuda/device_context.h"

#include <array>
#include <memory>
#include <mutex>
#include <sstream>

#include "core/check.h"
#include "core/cuda/cuda_check.h"

namespace aoetron::cuda {
namespace {

// Enough for any node; an ordinal beyond it is a CHECK failure.
constexpr int kMaxDevices = 64;

std::mutex g_contexts_mutex;
std::array<DeviceContext*, kMaxDevices> g_contexts{};  // created once, never destroyed

}  // namespace

const char* DeviceErrorText(DeviceErrorCode code) {
  switch (code) {
    case DeviceErrorCode::kNone:
      return "no error";
    case DeviceErrorCode::kEmbeddingIdOutOfRange:
      return "Embedding: a token id lies outside the table's rows (entry = flat index into ids)";
    case DeviceErrorCode::kTargetOutOfRange:
      return "CrossEntropy: a target is >= the vocabulary size (entry = row)";
    case DeviceErrorCode::kNanScore:
      return "TopK: a score is NaN, the model has diverged (entry = flat index into scores)";
    case DeviceErrorCode::kTopKIndexOutOfRange:
      return "TopKBackward: an index lies outside [0, columns) (entry = flat index into indices)";
    case DeviceErrorCode::kPositionOutOfRange:
      return "expert permute: a position lies outside [0, N*K) (entry = flat index into position)";
    case DeviceErrorCode::kExpertIndexOutOfRange:
      return "expert permute: an expert index lies outside [0, experts) (entry = flat index)";
    case DeviceErrorCode::kRowIndexOutOfRange:
      return "row move (CopyRows / AddRows / SegmentSumRows): a row index lies outside its tensor "
             "(entry = flat index into the row index)";
  }
  return "unknown device error";
}

int VisibleDeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // reset the runtime's last error so later calls start clean
    return 0;
  }
  return count;
}

std::string NoDeviceReason() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    return std::string("cudaGetDeviceCount: ") + cudaGetErrorName(status) + " (" +
           cudaGetErrorString(status) + ")";
  }
  if (count == 0) return "cudaGetDeviceCount: 0 devices";
  return "";
}

void SetCurrentDevice(int ordinal) {
  const int count = VisibleDeviceCount();
  AOETRON_CHECK(ordinal >= 0 && ordinal < count)
      << "CUDA device " << ordinal << " requested but " << count << " are visible";
  CUDA_CHECK(cudaSetDevice(ordinal));
}

int CurrentDevice() {
  int ordinal = 0;
  CUDA_CHECK(cudaGetDevice(&ordinal));
  return ordinal;
}

std::string DeviceDescription(int ordinal) {
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, ordinal));
  std::ostringstream out;
  out << prop.name << " (sm_" << prop.major << prop.minor << ", " << prop.multiProcessorCount
      << " SMs, " << static_cast<double>(prop.totalGlobalMem) / (1 << 30) << " GiB)";
  return out.str();
}

DeviceContext& DeviceContext::Get(int ordinal) {
  AOETRON_CHECK(ordinal >= 0 && ordinal < kMaxDevices) << "CUDA ordinal " << ordinal;
  const int current = CurrentDevice();
  AOETRON_CHECK(ordinal == current)
      << "a tensor on cuda:" << ordinal << " was used while cuda:" << current
      << " is the current device (one device per process: call cuda::SetCurrentDevice first)";
  std::lock_guard<std::mutex> lock(g_contexts_mutex);
  if (g_contexts[ordinal] == nullptr) g_contexts[ordinal] = new DeviceContext(ordinal);
  return *g_contexts[ordinal];
}

DeviceContext::DeviceContext(int ordinal) : ordinal_(ordinal) {
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&error_record_), sizeof(DeviceErrorRecord)));
  CUDA_CHECK(cudaMemset(error_record_, 0, sizeof(DeviceErrorRecord)));
  CUDA_CHECK(cudaDeviceGetAttribute(&multiprocessors_, cudaDevAttrMultiProcessorCount, ordinal));
  int shared = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&shared, cudaDevAttrMaxSharedMemoryPerBlockOptin, ordinal));
  max_shared_per_block_ = static_cast<size_t>(shared);
  CUDA_CHECK(cudaDeviceSynchronize());  // the memset above ran on the legacy stream
}

void DeviceContext::Synchronize() {
  DeviceErrorRecord record{};
  CUDA_CHECK(
      cudaMemcpyAsync(&record, error_record_, sizeof(record), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  AOETRON_CHECK(record.code == 0) << "cuda:" << ordinal_ << ": a kernel reported: "
                                  << DeviceErrorText(static_cast<DeviceErrorCode>(record.code))
                                  << "; entry " << record.detail;
}

void CopyHostToDevice(int ordinal, const void* host, void* device, size_t bytes) {
  if (bytes == 0) return;
  DeviceContext& context = DeviceContext::Get(ordinal);
  CUDA_CHECK(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, context.stream()));
  // From pageable memory the call returns once the data is staged; from pinned memory it may
  // return before the DMA has read `host`. Synchronise so the contract ("host may be reused")
  // holds for both: host → device copies are set-up work (parameters, batches), not per-op.
  CUDA_CHECK(cudaStreamSynchronize(context.stream()));
}

void CopyDeviceToHost(int ordinal, const void* device, void* host, size_t bytes) {
  DeviceContext& context = DeviceContext::Get(ordinal);
  if (bytes > 0) {
    CUDA_CHECK(cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, context.stream()));
  }
  context.Synchronize();
}

void CopyDeviceToDevice(int ordinal, const void* src, void* dst, size_t bytes) {
  if (bytes == 0 || src == dst) return;
  DeviceContext& context = DeviceContext::Get(ordinal);
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, context.stream()));
}

}  // namespace aoetron::cuda
