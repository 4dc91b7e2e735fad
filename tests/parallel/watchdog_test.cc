// The watchdog without MPI: a deadline that passes fires once with its description; one that is
// disarmed in time never fires.
#include "parallel/watchdog.h"

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace aoetron::parallel {
namespace {

class Recorder {
 public:
  Watchdog::ExpiryHandler Handler() {
    return [this](const std::string& message) {
      std::lock_guard<std::mutex> lock(mutex_);
      messages_.push_back(message);
    };
  }
  std::vector<std::string> messages() {
    std::lock_guard<std::mutex> lock(mutex_);
    return messages_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> messages_;
};

TEST(WatchdogTest, ExpiredDeadlineFiresOnceNamingTheWork) {
  Recorder recorder;
  Watchdog watchdog(recorder.Handler());
  const auto start = std::chrono::steady_clock::now();
  {
    ScopedDeadline deadline(&watchdog, "AllReduce(sum) of f32[8] on group dp",
                            absl::Milliseconds(100));
    while (recorder.messages().empty() &&
           std::chrono::steady_clock::now() - start < std::chrono::seconds(10)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // no second firing
  ASSERT_EQ(recorder.messages().size(), 1u);
  EXPECT_EQ(recorder.messages()[0],
            "AllReduce(sum) of f32[8] on group dp did not finish within 100ms");
  EXPECT_GE(waited, 0.09);
  EXPECT_LT(waited, 2.0);
  EXPECT_EQ(watchdog.armed_count(), 0);
}

TEST(WatchdogTest, DisarmedDeadlinesNeverFire) {
  Recorder recorder;
  Watchdog watchdog(recorder.Handler());
  for (int i = 0; i < 1000; ++i) {
    ScopedDeadline deadline(&watchdog, "quick call", absl::Milliseconds(50));
  }
  EXPECT_EQ(watchdog.armed_count(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_TRUE(recorder.messages().empty());
}

TEST(WatchdogTest, EarliestDeadlineFiresFirstWhileALongerOneWaits) {
  Recorder recorder;
  Watchdog watchdog(recorder.Handler());
  const uint64_t step = watchdog.Arm("training step 7", absl::Seconds(60));
  const uint64_t call = watchdog.Arm("Barrier on group world", absl::Milliseconds(50));
  const auto start = std::chrono::steady_clock::now();
  while (recorder.messages().empty() &&
         std::chrono::steady_clock::now() - start < std::chrono::seconds(10)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(recorder.messages().size(), 1u);
  EXPECT_EQ(recorder.messages()[0], "Barrier on group world did not finish within 50ms");
  EXPECT_EQ(watchdog.armed_count(), 1);
  watchdog.Disarm(call);  // already fired: a no-op
  watchdog.Disarm(step);
  EXPECT_EQ(watchdog.armed_count(), 0);
}

TEST(WatchdogTest, NullWatchdogAndInfiniteTimeoutArmNothing) {
  { ScopedDeadline deadline(nullptr, "nothing", absl::Seconds(1)); }
  Recorder recorder;
  Watchdog watchdog(recorder.Handler());
  ScopedDeadline deadline(&watchdog, "forever", absl::InfiniteDuration());
  EXPECT_EQ(watchdog.armed_count(), 0);
}

}  // namespace
}  // namespace aoetron::parallel
