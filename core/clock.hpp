// Time as the components see it, so that tests can move it by hand.
#pragma once

#include <chrono>

namespace pullthrough::core {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  // Monotonic. Safe to call from any thread.
  virtual TimePoint now() const = 0;
};

class SteadyClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
};

// Calendar time, for what must survive a restart (when upstream last confirmed a tag, when a blob
// was last used). It may step; users must tolerate that.
class WallClock {
 public:
  using TimePoint = std::chrono::system_clock::time_point;
  virtual ~WallClock() = default;
  // Safe to call from any thread.
  virtual TimePoint now() const = 0;
};

class SystemWallClock final : public WallClock {
 public:
  TimePoint now() const override { return std::chrono::system_clock::now(); }
};

// The calendar time of `at`, a steady time, given that `now` on the steady clock is `wall_now`.
inline WallClock::TimePoint wall_time(Clock::TimePoint at, Clock::TimePoint now,
                                      WallClock::TimePoint wall_now) {
  return wall_now - std::chrono::duration_cast<WallClock::TimePoint::duration>(now - at);
}

}  // namespace pullthrough::core
