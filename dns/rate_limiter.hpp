// Per-client token buckets: each client address may send `qps` queries a second on average, with
// bursts of up to one second's worth. Memory is bounded: idle clients are forgotten, and when the
// table is full of active clients a new one is let through uncounted rather than tracked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "core/clock.hpp"
#include "core/net.hpp"

namespace pullthrough::dns {

class RateLimiter {
 public:
  // qps 0 turns limiting off. `clock` must outlive the limiter.
  RateLimiter(std::uint32_t qps, const core::Clock& clock, std::size_t max_clients = 65536);

  // True when the client may send this query now (takes one token). Safe from any thread.
  bool allow(const core::IpAddress& client);

  std::size_t tracked_clients() const;

 private:
  struct Bucket {
    double tokens;
    core::Clock::TimePoint updated;
  };
  static constexpr std::size_t kShards = 16;
  struct Shard {
    mutable std::mutex mutex;
    std::unordered_map<core::IpAddress, Bucket, core::IpAddressHash> buckets;
  };

  void forget_idle(Shard& shard, core::Clock::TimePoint now);

  double qps_;
  const core::Clock& clock_;
  std::size_t max_per_shard_;
  Shard shards_[kShards];
};

}  // namespace pullthrough::dns
