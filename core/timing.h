// Wall-clock timing on the steady clock: the one helper every timed step, save and exchange uses.
#pragma once

#include <chrono>

namespace aoetron {

using SteadyClock = std::chrono::steady_clock;

// Seconds from `start` to now.
inline double SecondsSince(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

// Adds the seconds spent in its scope to *total when it ends.
class ScopedSeconds {
 public:
  explicit ScopedSeconds(double* total) : total_(total), start_(SteadyClock::now()) {}
  ScopedSeconds(const ScopedSeconds&) = delete;
  ScopedSeconds& operator=(const ScopedSeconds&) = delete;
  ~ScopedSeconds() { *total_ += SecondsSince(start_); }

 private:
  double* total_;
  SteadyClock::time_point start_;
};

}  // namespace aoetron
