#include "dns/rate_limiter.hpp"

#include <algorithm>
#include <functional>

namespace pullthrough::dns {

RateLimiter::RateLimiter(std::uint32_t qps, const core::Clock& clock, std::size_t max_clients)
    : qps_(qps), clock_(clock), max_per_shard_(std::max<std::size_t>(1, max_clients / kShards)) {}

void RateLimiter::forget_idle(Shard& shard, core::Clock::TimePoint now) {
  // A bucket untouched for a second is full again: forgetting it changes nothing.
  std::erase_if(shard.buckets, [&](const auto& entry) {
    return now - entry.second.updated >= std::chrono::seconds(1);
  });
}

bool RateLimiter::allow(const core::IpAddress& client) {
  if (qps_ <= 0) return true;
  auto address = core::unmapped(client);
  auto& shard = shards_[core::IpAddressHash{}(address) % kShards];
  auto now = clock_.now();
  std::lock_guard lock(shard.mutex);
  auto it = shard.buckets.find(address);
  if (it == shard.buckets.end()) {
    if (shard.buckets.size() >= max_per_shard_) {
      forget_idle(shard, now);
      if (shard.buckets.size() >= max_per_shard_) return true;
    }
    it = shard.buckets.emplace(address, Bucket{qps_, now}).first;
  }
  Bucket& bucket = it->second;
  std::chrono::duration<double> elapsed = now - bucket.updated;
  bucket.tokens = std::min(qps_, bucket.tokens + elapsed.count() * qps_);
  bucket.updated = now;
  if (bucket.tokens < 1.0) return false;
  bucket.tokens -= 1.0;
  return true;
}

std::size_t RateLimiter::tracked_clients() const {
  std::size_t total = 0;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    total += shard.buckets.size();
  }
  return total;
}

}  // namespace pullthrough::dns
