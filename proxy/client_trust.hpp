// What the cache learns about its clients for the DNS side (health/client_scope.hpp): which ones
// do not trust the appliance's CA (their TLS handshake failed with a certificate alert), and which
// ones enrolled (POST /enroll on the CA page, the last step of /install.sh). Each client is
// reported once per bypass: to the DNS side of this process directly (`--role all`), and to every
// DNS side that checks this cache through the events in its health check answers
// (health/client_events.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <spdlog/logger.h>

#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/counters.hpp"
#include "core/net.hpp"
#include "health/bypass_table.hpp"
#include "health/certificate_alert.hpp"
#include "health/client_events.hpp"
#include "health/client_scope.hpp"

namespace pullthrough::proxy {

#define PULLTHROUGH_CLIENT_TRUST_COUNTERS(COUNTER)                                         \
  COUNTER(untrusted_clients,                                                               \
          "clients newly seen failing the handshake with a certificate "                   \
          "alert: reported to the DNS side once per untrusted_bypass")                     \
  COUNTER(enroll_accepted, "POST /enroll requests accepted")                               \
  COUNTER(enroll_refused, "POST /enroll requests refused: client outside dns.allow")       \
  COUNTER(enroll_rate_limited, "POST /enroll requests refused: over the rate limit (429)") \
  COUNTER(enroll_failed, "POST /enroll requests that failed: the enrolled set not written")

struct ClientTrustCounters {
  PULLTHROUGH_CLIENT_TRUST_COUNTERS(PULLTHROUGH_COUNTER_FIELD)
  PULLTHROUGH_COUNTER_VISITOR(PULLTHROUGH_CLIENT_TRUST_COUNTERS)
};

class ClientTrust {
 public:
  // `config`, `clock` and `wall_clock` must outlive it. `scope`: the DNS side of this process
  // (`--role all`), told directly; null with `--role proxy`.
  ClientTrust(const config::Config& config, const core::Clock& clock,
              const core::WallClock& wall_clock, health::ClientScope* scope);

  // The front door saw `client` fail a handshake with `alert`. Safe from any thread.
  void untrusted(const core::IpAddress& client, health::CertificateAlert alert);

  struct Enrolled {
    enum class Outcome : std::uint8_t { enrolled, refused, rate_limited, failed } outcome;
    std::string message;  // one line for the person at the client
    std::chrono::seconds retry_after{0};
  };
  // POST /enroll from `client`: accepted from dns.allow clients, at most once per
  // kEnrollInterval each and kEnrollBurst a second in all. Safe from any thread.
  Enrolled enroll(const core::IpAddress& client);

  static constexpr auto kEnrollInterval = std::chrono::seconds(10);
  static constexpr std::size_t kEnrollBurst = 20;

  // For the health check's answer.
  const health::ClientEventLog& events() const { return events_; }

  using Untrusted = health::BypassTable::Listed;
  // The clients reported as untrusted whose bypass still runs, the oldest first (for /healthz
  // with `--role proxy`).
  std::vector<Untrusted> untrusted_now() const;

  const ClientTrustCounters& counters() const { return counters_; }

 private:
  bool over_rate(const core::IpAddress& client, core::Clock::TimePoint now);

  const config::Config& config_;
  const core::Clock& clock_;
  const core::WallClock& wall_clock_;
  health::ClientScope* scope_;
  std::shared_ptr<spdlog::logger> log_;
  health::ClientEventLog events_;

  mutable std::mutex mutex_;
  health::BypassTable reported_;
  std::unordered_map<core::IpAddress, core::Clock::TimePoint, core::IpAddressHash> last_enroll_;
  std::vector<core::Clock::TimePoint> recent_enrolls_;  // the last second's, for the burst
  ClientTrustCounters counters_;
};

}  // namespace pullthrough::proxy
