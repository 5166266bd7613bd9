// A latency histogram with fixed bucket bounds, for /metrics (a Prometheus histogram). Lock-free
// and safe from any thread; meant for requests that cost a network round trip each, not for
// per-packet paths (every observation touches two shared cache lines).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace pullthrough::core {

class LatencyHistogram {
 public:
  // Upper bounds in seconds: from a loopback round trip to a request that has nearly timed out.
  static constexpr std::array<double, 14> kBounds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

  void observe(std::chrono::nanoseconds took) {
    const double seconds = std::chrono::duration<double>(took).count();
    std::size_t bucket = 0;
    while (bucket < kBounds.size() && seconds > kBounds[bucket]) ++bucket;
    counts_[bucket].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(static_cast<std::uint64_t>(took.count() < 0 ? 0 : took.count()),
                      std::memory_order_relaxed);
  }

  struct Snapshot {
    // cumulative[i]: observations at most kBounds[i]; the last entry is every observation.
    std::array<std::uint64_t, kBounds.size() + 1> cumulative{};
    double sum_seconds = 0;
    std::uint64_t count() const { return cumulative.back(); }
  };

  Snapshot snapshot() const {
    Snapshot out;
    std::uint64_t running = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      running += counts_[i].load(std::memory_order_relaxed);
      out.cumulative[i] = running;
    }
    out.sum_seconds = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
    return out;
  }

 private:
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> counts_{};
  std::atomic<std::uint64_t> sum_ns_{0};
};

}  // namespace pullthrough::core
