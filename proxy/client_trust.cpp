#include "proxy/client_trust.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "core/logging.hpp"
#include "core/units.hpp"

namespace pullthrough::proxy {
namespace {

// Enough for every machine of a LAN that enrolls within kEnrollInterval.
constexpr std::size_t kMaxEnrollClients = 4096;

}  // namespace

ClientTrust::ClientTrust(const config::Config& config, const core::Clock& clock,
                         const core::WallClock& wall_clock, health::ClientScope* scope)
    : config_(config),
      clock_(clock),
      wall_clock_(wall_clock),
      scope_(scope),
      log_(core::logger("proxy")),
      events_(clock),
      reported_(config.dns.intercept.max_bypassed) {}

void ClientTrust::untrusted(const core::IpAddress& client, health::CertificateAlert alert) {
  auto address = core::unmapped(client);
  auto now = clock_.now();
  // With the bypass off a client is still reported once an hour, so that the log shows it.
  auto length = config_.dns.intercept.untrusted_bypass > std::chrono::milliseconds::zero()
                    ? config_.dns.intercept.untrusted_bypass
                    : std::chrono::milliseconds(std::chrono::hours(1));
  {
    std::lock_guard lock(mutex_);
    if (!reported_.learn(address, alert, now, length, now)) return;
  }
  counters_.untrusted_clients.add();
  events_.publish(health::ClientEventKind::untrusted, address, alert);
  if (scope_ != nullptr) {
    scope_->learn_untrusted(address, alert, std::chrono::milliseconds::zero(), "this cache");
  } else {
    log_->warn(
        "client {} does not trust the appliance's CA (TLS alert {}): the DNS side is told at its "
        "next health check",
        address.to_string(), health::to_string(alert));
  }
}

bool ClientTrust::over_rate(const core::IpAddress& client, core::Clock::TimePoint now) {
  std::erase_if(recent_enrolls_, [&](auto at) { return now - at >= std::chrono::seconds(1); });
  if (recent_enrolls_.size() >= kEnrollBurst) return true;
  auto it = last_enroll_.find(client);
  if (it != last_enroll_.end() && now - it->second < kEnrollInterval) return true;
  if (last_enroll_.size() >= kMaxEnrollClients) {
    std::erase_if(last_enroll_, [&](const auto& e) { return now - e.second >= kEnrollInterval; });
    // Full of clients that all enrolled in the last kEnrollInterval: a flood, not a LAN.
    if (last_enroll_.size() >= kMaxEnrollClients) return true;
  }
  last_enroll_[client] = now;
  recent_enrolls_.push_back(now);
  return false;
}

ClientTrust::Enrolled ClientTrust::enroll(const core::IpAddress& client) {
  using Outcome = Enrolled::Outcome;
  auto address = core::unmapped(client);
  if (!config_.dns.allow.empty() && !core::contains_any(config_.dns.allow, address)) {
    counters_.enroll_refused.add();
    return {Outcome::refused,
            fmt::format("{} is not a client of this appliance's DNS (dns.allow): not enrolled",
                        address.to_string()),
            {}};
  }
  auto now = clock_.now();
  {
    std::lock_guard lock(mutex_);
    if (over_rate(address, now)) {
      counters_.enroll_rate_limited.add();
      return {Outcome::rate_limited, "too many enrollments: try again in a few seconds",
              std::chrono::duration_cast<std::chrono::seconds>(kEnrollInterval)};
    }
  }
  if (scope_ != nullptr) {
    auto result = scope_->enroll(address, "enroll");
    if (!result.ok) {
      counters_.enroll_failed.add();
      return {Outcome::failed, "not enrolled: " + result.error, {}};
    }
  }
  {
    std::lock_guard lock(mutex_);
    reported_.clear(address);
  }
  events_.publish(health::ClientEventKind::enrolled, address);
  counters_.enroll_accepted.add();
  if (scope_ != nullptr) {
    return {Outcome::enrolled,
            fmt::format("enrolled {}: its registry pulls go through this cache from now on",
                        address.to_string()),
            {}};
  }
  log_->info("client {} enrolled: the DNS side is told at its next health check",
             address.to_string());
  return {Outcome::enrolled,
          fmt::format("enrolled {}: its registry pulls go through this cache within a few seconds",
                      address.to_string()),
          {}};
}

std::vector<ClientTrust::Untrusted> ClientTrust::untrusted_now() const {
  auto now = clock_.now();
  auto wall_now = wall_clock_.now();
  std::lock_guard lock(mutex_);
  return reported_.listed(now, wall_now);
}

}  // namespace pullthrough::proxy
