// Invariant checks for programming errors inside the runtime.
//
// AOETRON_CHECK(cond) << "context" aborts the process with the file, line, condition and the
// streamed message when cond is false. It is for conditions that only a bug can violate (shape
// mismatches between layers, dtype misuse). Errors caused by the user's input — configs, data,
// checkpoints — are returned as absl::Status at the boundary instead, never CHECKed.
#pragma once

#include <cstdlib>
#include <iostream>
#include <sstream>

namespace aoetron::internal {

class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition) {
    stream_ << file << ":" << line << ": check failed: " << condition << " ";
  }
  [[noreturn]] ~CheckFailure() {
    std::cerr << stream_.str() << std::endl;
    std::abort();
  }
  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};

}  // namespace aoetron::internal

#define AOETRON_CHECK(condition) \
  if (condition) {               \
  } else                         \
    ::aoetron::internal::CheckFailure(__FILE__, __LINE__, #condition).stream()

#define AOETRON_CHECK_EQ(a, b) AOETRON_CHECK((a) == (b)) << "(" << (a) << " vs " << (b) << ") "
