// The clients that get the real registries' answers for a while because a TLS handshake showed
// they do not trust the appliance's CA. Bounded: at most `capacity` clients, and when a new one
// comes in at capacity the one bypassed longest goes first. Not thread-safe: its owner locks
// (health/client_scope.hpp).
#pragma once

#include <utility>

#include <chrono>
#include <cstddef>
#include <set>
#include <unordered_map>
#include <vector>

#include "core/clock.hpp"
#include "core/net.hpp"
#include "core/units.hpp"
#include "health/certificate_alert.hpp"

namespace pullthrough::health {

class BypassTable {
 public:
  using TimePoint = core::Clock::TimePoint;

  struct Bypass {
    core::IpAddress client;
    TimePoint since;
    TimePoint until;
    CertificateAlert alert;
  };

  // `capacity` is at least 1.
  explicit BypassTable(std::size_t capacity);

  // Bypasses `client` from `since` for `length`, unless it is bypassed at `now` already: a
  // client that keeps failing while its old answers expire does not extend its own bypass. True
  // when this starts a bypass (to log and count once).
  bool learn(const core::IpAddress& client, CertificateAlert alert, TimePoint since,
             std::chrono::milliseconds length, TimePoint now);
  // Ends the client's bypass. True when it had one (expired or not).
  bool clear(const core::IpAddress& client);

  bool bypassed(const core::IpAddress& client, TimePoint now) const;
  // The bypasses in force at `now`, the oldest first.
  std::vector<Bypass> active(TimePoint now) const;

  // A bypass in calendar time, for /healthz and logs.
  struct Listed {
    core::IpAddress client;
    core::SystemTime since;
    core::SystemTime until;
    CertificateAlert alert;
  };
  // active(now), with `wall_now` the calendar time at `now`.
  std::vector<Listed> listed(TimePoint now, core::SystemTime wall_now) const;
  // Entries held, expired ones not yet dropped included.
  std::size_t size() const { return entries_.size(); }
  // Drops the expired entries.
  void expire(TimePoint now);

 private:
  void erase(std::unordered_map<core::IpAddress, Bypass, core::IpAddressHash>::iterator it);

  std::size_t capacity_;
  std::unordered_map<core::IpAddress, Bypass, core::IpAddressHash> entries_;
  std::set<std::pair<TimePoint, core::IpAddress>> by_since_;
};

}  // namespace pullthrough::health
