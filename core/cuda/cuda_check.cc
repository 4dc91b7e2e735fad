#include "core/cuda/cuda_check.h"

#include <cstdlib>
#include <iostream>

namespace aoetron::cuda::internal {

void FailCall(const char* library, const char* call, const char* file, int line,
              const std::string& error) {
  std::cerr << file << ":" << line << ": " << library << " call failed: " << call << ": " << error
            << std::endl;
  std::abort();
}

}  // namespace aoetron::cuda::internal
