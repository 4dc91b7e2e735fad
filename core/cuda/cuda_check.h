// Checked calls into the CUDA runtime, cuBLAS/cuBLASLt and NCCL.
//
//   CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream));
//   CUBLAS_CHECK(cublasLtMatmul(...));
//   NCCL_CHECK(ncclAllReduce(...));
//   AOETRON_CUDA_CHECK_LAUNCH("RmsNormForward");   // after every kernel launch
//
// Every call whose status is not success ends the process with one line naming the call as
// written, the file and line, and the library's own error name and text, e.g.
//   core/cuda/caching_allocator.cc:88: CUDA call failed: cudaMalloc(&ptr, bytes):
//   cudaErrorMemoryAllocation (out of memory)
// There is nothing to recover from: a failed device call leaves the device state unknown, and in a
// multi-rank job the other ranks are brought down by mpirun when this process aborts.
//
// The macros expand at the call site, so this header needs only the library whose macro is used
// (NCCL_CHECK needs <nccl.h> included before it is used; core/ knows nothing of NCCL).
#pragma once

#include <string>

namespace aoetron::cuda::internal {

// Prints "<file>:<line>: <library> call failed: <call>: <error>" and aborts.
[[noreturn]] void FailCall(const char* library, const char* call, const char* file, int line,
                           const std::string& error);

}  // namespace aoetron::cuda::internal

#define CUDA_CHECK(call)                                                                        \
  do {                                                                                          \
    const cudaError_t aoetron_cuda_status_ = (call);                                            \
    if (aoetron_cuda_status_ != cudaSuccess) {                                                  \
      ::aoetron::cuda::internal::FailCall("CUDA", #call, __FILE__, __LINE__,                    \
                                          std::string(cudaGetErrorName(aoetron_cuda_status_)) + \
                                              " (" + cudaGetErrorString(aoetron_cuda_status_) + \
                                              ")");                                             \
    }                                                                                           \
  } while (false)

#define CUBLAS_CHECK(call)                                                    \
  do {                                                                        \
    const cublasStatus_t aoetron_cublas_status_ = (call);                     \
    if (aoetron_cublas_status_ != CUBLAS_STATUS_SUCCESS) {                    \
      ::aoetron::cuda::internal::FailCall(                                    \
          "cuBLAS", #call, __FILE__, __LINE__,                                \
          std::string(cublasLtGetStatusName(aoetron_cublas_status_)) + " (" + \
              cublasLtGetStatusString(aoetron_cublas_status_) + ")");         \
    }                                                                         \
  } while (false)

#define NCCL_CHECK(call)                                                                          \
  do {                                                                                            \
    const ncclResult_t aoetron_nccl_status_ = (call);                                             \
    if (aoetron_nccl_status_ != ncclSuccess) {                                                    \
      ::aoetron::cuda::internal::FailCall("NCCL", #call, __FILE__, __LINE__,                      \
                                          std::string(ncclGetErrorString(aoetron_nccl_status_)) + \
                                              " (last: " + ncclGetLastError(nullptr) + ")");      \
    }                                                                                             \
  } while (false)

// After a kernel launch: a bad launch configuration (too many threads, too much shared memory)
// is reported here, naming the kernel. Errors raised while the kernel runs surface at the next
// synchronising call, which is checked too.
#define AOETRON_CUDA_CHECK_LAUNCH(kernel_name)                                                    \
  do {                                                                                            \
    const cudaError_t aoetron_launch_status_ = cudaGetLastError();                                \
    if (aoetron_launch_status_ != cudaSuccess) {                                                  \
      ::aoetron::cuda::internal::FailCall("CUDA", "launch of " kernel_name, __FILE__, __LINE__,   \
                                          std::string(cudaGetErrorName(aoetron_launch_status_)) + \
                                              " (" + cudaGetErrorString(aoetron_launch_status_) + \
                                              ")");                                               \
    }                                                                                             \
  } while (false)
