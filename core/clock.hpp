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

}  // namespace pullthrough::core
