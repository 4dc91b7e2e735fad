// Watchdog: ends the job when a collective or a step takes longer than its deadline.
//
// A hang is the worst failure a distributed job can have: nothing is printed and the allocation
// burns. Every collective arms a deadline for its own duration (the communicator does this; the
// default timeout is 600 s, see CollectiveOptions), and the trainer can arm one around a whole
// step or any other phase:
//
//     ScopedDeadline deadline(&context.watchdog(), absl::StrCat("training step ", step),
//                             absl::Seconds(900));
//
// When an armed deadline passes before it is disarmed, the watchdog's thread calls the expiry
// handler with "<description> did not finish within <timeout>". The default handler ends the job
// through AbortAll, so the message reads e.g.
//     rank 3: watchdog: AllReduce(sum) of f32[1048576] on group dp did not finish within 10s
// Each deadline fires at most once.
//
// Thread safety: Arm/Disarm and ScopedDeadline may be used from any thread. The handler runs on
// the watchdog's own thread and must be thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "absl/time/time.h"

namespace aoetron::parallel {

class Watchdog {
 public:
  using ExpiryHandler = std::function<void(const std::string& message)>;

  // Starts the monitoring thread. With no handler, an expired deadline ends the job via
  // AbortAll("watchdog: <message>").
  explicit Watchdog(ExpiryHandler on_expiry = nullptr);
  // Stops the thread; deadlines still armed are dropped without firing.
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Arms a deadline `timeout` from now and returns its id. An infinite timeout arms nothing
  // (returns 0). `description` names the work: "AllReduce(sum) of f32[8] on group dp".
  uint64_t Arm(std::string description, absl::Duration timeout);
  // Disarms deadline `id`; a no-op for 0, for an id that already fired or was disarmed.
  void Disarm(uint64_t id);

  // Deadlines currently armed (for tests and diagnostics).
  int armed_count() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Deadline {
    Clock::time_point when;
    absl::Duration timeout;
    std::string description;
  };

  void Run();

  ExpiryHandler on_expiry_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<uint64_t, Deadline> armed_;  // by id
  uint64_t next_id_ = 1;
  bool stopping_ = false;
  std::thread thread_;
};

// Arms a deadline for the lifetime of the object. A null watchdog or an infinite timeout makes
// it a no-op, so callers need no special case when no watchdog is configured.
class ScopedDeadline {
 public:
  ScopedDeadline(Watchdog* watchdog, std::string description, absl::Duration timeout)
      : watchdog_(watchdog), id_(watchdog ? watchdog->Arm(std::move(description), timeout) : 0) {}
  ~ScopedDeadline() {
    if (watchdog_ != nullptr) watchdog_->Disarm(id_);
  }
  ScopedDeadline(const ScopedDeadline&) = delete;
  ScopedDeadline& operator=(const ScopedDeadline&) = delete;

 private:
  Watchdog* watchdog_;
  uint64_t id_;
};

}  // namespace aoetron::parallel
