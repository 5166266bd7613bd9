// Which clients the DNS side hands the cache's addresses to for intercepted names
// (dns.intercept): every client, or the listed networks and the enrolled machines; minus, for
// `untrusted_bypass`, each client whose TLS handshake with a cache showed it does not trust the
// appliance's CA. Every other client gets the real registries' answers, as when the health gate
// is closed, so that a machine without the CA keeps pulling (from the real registries) instead
// of failing every pull with "certificate signed by unknown authority".
//
// What it learns comes from the proxy: directly with `--role all`, else through the health
// check's client events (health/client_events.hpp).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <spdlog/logger.h>

#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/counters.hpp"
#include "core/net.hpp"
#include "health/bypass_table.hpp"
#include "health/certificate_alert.hpp"
#include "health/client_events.hpp"
#include "health/enrolled_clients.hpp"

namespace pullthrough::health {

#define PULLTHROUGH_CLIENT_SCOPE_COUNTERS(COUNTER)                                           \
  COUNTER(enrollments, "clients that enrolled (POST /enroll, `pullthrough clients add`)")    \
  COUNTER(unenrollments, "clients removed from the enrolled set (`pullthrough clients rm`)") \
  COUNTER(enrollment_errors, "enrollments that could not be written to state_dir")           \
  COUNTER(events_received, "client events received from caches in health check answers")     \
  COUNTER(events_ignored,                                                                    \
          "client events ignored: from before this process started, or from its own cache")

struct ClientScopeCounters {
  PULLTHROUGH_CLIENT_SCOPE_COUNTERS(PULLTHROUGH_COUNTER_FIELD)
  PULLTHROUGH_COUNTER_VISITOR(PULLTHROUGH_CLIENT_SCOPE_COUNTERS)
};

class ClientScope {
 public:
  // `clock` and `wall_clock` must outlive the scope.
  ClientScope(const config::InterceptConfig& config, EnrolledClients enrolled,
              const core::Clock& clock, const core::WallClock& wall_clock);
  ClientScope(const ClientScope&) = delete;
  ClientScope& operator=(const ClientScope&) = delete;

  enum class Verdict : std::uint8_t {
    intercept,  // gets the cache's addresses
    outside,    // not in dns.intercept.clients
    bypassed,   // in them, but does not trust the CA (learned)
  };
  // What `client` gets now. Safe from any thread; takes no lock unless the enrolled set or the
  // bypasses changed since this thread last asked.
  Verdict verdict(const core::IpAddress& client) const;
  bool intercepts(const core::IpAddress& client) const {
    return verdict(client) == Verdict::intercept;
  }
  // Records that `client` was handed a cache's address, for the count of clients intercepted in
  // the last hour. Safe from any thread.
  void note_intercepted(const core::IpAddress& client) const;

  // A cache saw `client` fail a handshake with `alert`, `age` ago. Starts its bypass unless it
  // has one, or the bypass is off; logs and counts each start once. `seen_by` names the cache
  // for the log.
  void learn_untrusted(const core::IpAddress& client, CertificateAlert alert,
                       std::chrono::milliseconds age, std::string_view seen_by);

  struct EnrollResult {
    bool ok = true;
    bool bypass_cleared = false;
    bool added = false;  // false: it was enrolled already
    std::string error;   // when !ok: why the set could not be written
  };
  // Clears the client's bypass and adds it to the enrolled set. `via`: one word for the list.
  EnrollResult enroll(const core::IpAddress& client, std::string_view via);

  struct RemoveResult {
    bool ok = true;
    bool removed = false;
    std::string error;
  };
  RemoveResult remove(const core::IpAddress& client);

  // Events from a cache's health check answer. Events of `ignored_epoch` (this process's own
  // cache, which reports directly) and events from before this scope existed (already applied
  // before a restart, or undone since) are skipped.
  void apply(std::string_view epoch, const std::vector<NumberedEvent>& events,
             std::string_view seen_by);
  void ignore_epoch(std::string epoch);

  using Bypassed = BypassTable::Listed;
  struct Status {
    std::vector<Bypassed> bypassed;  // the oldest first
    std::vector<EnrolledClients::Entry> enrolled;
    std::size_t intercepted = 0;  // distinct clients handed a cache's address in the last hour
  };
  Status status() const;

  // Gauges for /metrics.
  std::size_t bypassed_count() const;
  std::size_t enrolled_count() const;
  std::size_t intercepted_count() const;
  // Bypasses started, by alert (index_of(alert)).
  std::array<std::uint64_t, kCertificateAlerts.size()> bypass_events() const;
  const ClientScopeCounters& counters() const { return counters_; }
  const config::InterceptConfig& config() const { return config_; }

 private:
  // What intercepts() reads: swapped whole on every change.
  struct Snapshot {
    std::unordered_set<core::IpAddress, core::IpAddressHash> enrolled;
    std::unordered_map<core::IpAddress, core::Clock::TimePoint, core::IpAddressHash> bypassed;
  };
  // Call with mutex_ held.
  void publish_locked();
  std::shared_ptr<const Snapshot> current() const;

  static constexpr std::size_t kSeenShards = 16;
  static constexpr std::size_t kMaxSeenPerShard = 4096;
  struct SeenShard {
    mutable std::mutex mutex;
    std::unordered_map<core::IpAddress, core::Clock::TimePoint, core::IpAddressHash> last;
  };

  const std::uint64_t id_;
  const config::InterceptConfig config_;
  const core::Clock& clock_;
  const core::WallClock& wall_clock_;
  const core::Clock::TimePoint started_;
  std::shared_ptr<spdlog::logger> log_;

  mutable std::mutex mutex_;
  EnrolledClients enrolled_;
  BypassTable bypasses_;
  std::string ignored_epoch_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::atomic<std::uint64_t> generation_{0};

  std::array<core::Counter, kCertificateAlerts.size()> bypass_events_;
  mutable SeenShard seen_[kSeenShards];
  ClientScopeCounters counters_;
};

}  // namespace pullthrough::health
