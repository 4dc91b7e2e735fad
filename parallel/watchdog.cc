#include "parallel/watchdog.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "parallel/abort.h"

namespace aoetron::parallel {

Watchdog::Watchdog(ExpiryHandler on_expiry) : on_expiry_(std::move(on_expiry)) {
  if (!on_expiry_) {
    on_expiry_ = [](const std::string& message) { AbortAll(absl::StrCat("watchdog: ", message)); };
  }
  thread_ = std::thread([this] { Run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

uint64_t Watchdog::Arm(std::string description, absl::Duration timeout) {
  if (timeout == absl::InfiniteDuration()) return 0;
  const Clock::time_point when = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                    absl::ToChronoNanoseconds(timeout));
  uint64_t id;
  bool earliest;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    id = next_id_++;
    earliest = true;
    for (const auto& [other_id, other] : armed_) {
      if (other.when <= when) {
        earliest = false;
        break;
      }
    }
    armed_.emplace(id, Deadline{when, timeout, std::move(description)});
  }
  // Only a new earliest deadline changes when the thread must wake up.
  if (earliest) changed_.notify_all();
  return id;
}

void Watchdog::Disarm(uint64_t id) {
  if (id == 0) return;
  std::lock_guard<std::mutex> lock(mutex_);
  armed_.erase(id);
  // No notification: the thread wakes at the old deadline, finds nothing due, and sleeps again.
}

int Watchdog::armed_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int>(armed_.size());
}

void Watchdog::Run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    const Clock::time_point now = Clock::now();
    Clock::time_point next = Clock::time_point::max();
    std::vector<std::string> expired;
    for (auto it = armed_.begin(); it != armed_.end();) {
      if (it->second.when <= now) {
        expired.push_back(absl::StrCat(it->second.description, " did not finish within ",
                                       absl::FormatDuration(it->second.timeout)));
        it = armed_.erase(it);
      } else {
        next = std::min(next, it->second.when);
        ++it;
      }
    }
    if (!expired.empty()) {
      lock.unlock();
      for (const std::string& message : expired) on_expiry_(message);
      lock.lock();
      continue;
    }
    if (next == Clock::time_point::max()) {
      changed_.wait(lock);
    } else {
      changed_.wait_until(lock, next);
    }
  }
}

}  // namespace aoetron::parallel
