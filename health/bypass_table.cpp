#include "health/bypass_table.hpp"

#include <algorithm>

namespace pullthrough::health {

BypassTable::BypassTable(std::size_t capacity) : capacity_(std::max<std::size_t>(1, capacity)) {}

void BypassTable::erase(
    std::unordered_map<core::IpAddress, Bypass, core::IpAddressHash>::iterator it) {
  by_since_.erase({it->second.since, it->first});
  entries_.erase(it);
}

bool BypassTable::learn(const core::IpAddress& client, CertificateAlert alert, TimePoint since,
                        std::chrono::milliseconds length, TimePoint now) {
  auto address = core::unmapped(client);
  auto until = since + length;
  if (until <= now) return false;
  auto it = entries_.find(address);
  if (it != entries_.end()) {
    if (it->second.until > now) return false;
    erase(it);
  }
  if (entries_.size() >= capacity_) expire(now);
  while (entries_.size() >= capacity_) erase(entries_.find(by_since_.begin()->second));
  entries_.emplace(address, Bypass{address, since, until, alert});
  by_since_.emplace(since, address);
  return true;
}

bool BypassTable::clear(const core::IpAddress& client) {
  auto it = entries_.find(core::unmapped(client));
  if (it == entries_.end()) return false;
  erase(it);
  return true;
}

bool BypassTable::bypassed(const core::IpAddress& client, TimePoint now) const {
  auto it = entries_.find(core::unmapped(client));
  return it != entries_.end() && it->second.until > now;
}

std::vector<BypassTable::Bypass> BypassTable::active(TimePoint now) const {
  std::vector<Bypass> out;
  for (const auto& [since, address] : by_since_) {
    const auto& entry = entries_.at(address);
    if (entry.until > now) out.push_back(entry);
  }
  return out;
}

std::vector<BypassTable::Listed> BypassTable::listed(TimePoint now,
                                                     core::SystemTime wall_now) const {
  std::vector<Listed> out;
  for (const auto& bypass : active(now)) {
    out.push_back(Listed{bypass.client, core::wall_time(bypass.since, now, wall_now),
                         core::wall_time(bypass.until, now, wall_now), bypass.alert});
  }
  return out;
}

void BypassTable::expire(TimePoint now) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.until <= now) {
      by_since_.erase({it->second.since, it->first});
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace pullthrough::health
