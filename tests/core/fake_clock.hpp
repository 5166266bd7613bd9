// A clock that moves only when a test says so.
#pragma once

#include <atomic>

#include "core/clock.hpp"

namespace pullthrough::core::testing {

class FakeClock final : public Clock {
 public:
  TimePoint now() const override { return TimePoint(std::chrono::nanoseconds(now_.load())); }
  void advance(std::chrono::steady_clock::duration by) {
    now_ += std::chrono::duration_cast<std::chrono::nanoseconds>(by).count();
  }

 private:
  // Starts well past the epoch so that "now minus something" stays positive.
  std::atomic<std::int64_t> now_{std::chrono::nanoseconds(std::chrono::hours(1000)).count()};
};

// Calendar time that moves only when a test says so.
class FakeWallClock final : public WallClock {
 public:
  TimePoint now() const override { return TimePoint(std::chrono::nanoseconds(now_.load())); }
  void advance(std::chrono::system_clock::duration by) {
    now_ += std::chrono::duration_cast<std::chrono::nanoseconds>(by).count();
  }

 private:
  std::atomic<std::int64_t> now_{
      std::chrono::nanoseconds(std::chrono::seconds(1'800'000'000)).count()};
};

}  // namespace pullthrough::core::testing
