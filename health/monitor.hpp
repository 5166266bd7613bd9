// health/: whether the DNS side may hand out a cache, decided from the network as clients see it.
//
// The health monitor: checks every cache host over the network, as a client would reach it, and
// opens the DNS responder's gate for the hosts that pass. A host is up after `rise` consecutive
// passed checks and down after `fall` consecutive failed ones; every host starts down, so the
// gate stays closed (every name forwarded to the real registries) until a cache has proved
// itself. A host that alternates never changes state: flapping does not reach the DNS answers.
#pragma once

#include "core/asio.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/counters.hpp"
#include "core/net.hpp"
#include "core/service.hpp"
#include "health/gate.hpp"

namespace pullthrough::health {

// One check's outcome. `detail` says what was seen ("GET /v2/ answered 200") or why it failed
// ("connect: Connection refused"), for logs and /healthz.
struct CheckResult {
  bool ok = false;
  std::string detail;
  std::chrono::milliseconds took{0};
  // The cache said it is about to stop (health/protocol.hpp): down at once, not after
  // `fall` failures.
  bool leaving = false;
};

// Checks one cache host. The TLS implementation is health/cache_probe.hpp; tests script their own.
class CacheProbe {
 public:
  virtual ~CacheProbe() = default;
  // Completes within about `timeout`; never throws. Runs on the caller's executor.
  virtual boost::asio::awaitable<CheckResult> check(const core::Endpoint& target,
                                                    std::chrono::milliseconds timeout) = 0;
};

// The rise/fall state of one host: no I/O and no clock of its own, so tests drive it directly.
class HostHealth {
 public:
  using TimePoint = core::WallClock::TimePoint;
  // `rise` and `fall` are at least 1 (the configuration loader guarantees it). `created` is when
  // the host started being watched: the start of its first down period.
  HostHealth(std::uint32_t rise, std::uint32_t fall, TimePoint created);

  // Records one check that ended at `at`. True when it moved the host up or down. A check that
  // says the cache is leaving takes an up host down at once.
  bool record(CheckResult result, TimePoint at);

  bool up() const { return up_; }
  // Passed checks in a row while down, failed ones in a row while up: progress to the next move.
  std::uint32_t streak() const { return streak_; }
  bool checked() const { return checks_ > 0; }
  const CheckResult& last() const { return last_; }
  TimePoint last_at() const { return last_at_; }
  TimePoint since() const { return since_; }  // the last move (or `created`)
  std::uint64_t checks() const { return checks_; }
  std::uint64_t failures() const { return failures_; }
  // The check that made the last move (empty before the first move).
  const std::string& reason() const { return reason_; }

 private:
  std::uint32_t rise_;
  std::uint32_t fall_;
  bool up_ = false;
  std::uint32_t streak_ = 0;
  CheckResult last_;
  TimePoint last_at_{};
  TimePoint since_;
  std::uint64_t checks_ = 0;
  std::uint64_t failures_ = 0;
  std::string reason_;
};

// A cache as the DNS side sees it: the address handed out, and where a client (and so the check)
// connects. Clients of a registry always use port 443.
struct CacheHost {
  core::IpAddress address;
  core::Endpoint endpoint;
};

#define PULLTHROUGH_HEALTH_COUNTERS(COUNTER)                                     \
  COUNTER(checks_passed, "health checks of cache hosts that passed")             \
  COUNTER(checks_failed, "health checks of cache hosts that failed")             \
  COUNTER(hosts_up, "cache hosts that went up (rise consecutive passed checks)") \
  COUNTER(hosts_down, "cache hosts that went down (fall consecutive failed checks)")

struct HealthCounters {
  PULLTHROUGH_HEALTH_COUNTERS(PULLTHROUGH_COUNTER_FIELD)
  PULLTHROUGH_COUNTER_VISITOR(PULLTHROUGH_HEALTH_COUNTERS)
};

// One host as a snapshot saw it: a copy of its state machine.
struct HostStatus {
  CacheHost host;
  HostHealth health;
};

struct HealthSnapshot {
  std::vector<core::IpAddress> handed_out;  // empty: the gate is closed
  std::vector<HostStatus> hosts;
};

class HealthMonitor final : public core::Service {
 public:
  // `probe`, `gate` and `clock` must outlive the monitor. Each host is checked every
  // `health.interval` (a check that takes longer delays the next one, never overlaps it), each
  // check bounded by `health.timeout`.
  HealthMonitor(boost::asio::io_context& io, std::vector<CacheHost> hosts,
                const config::HealthConfig& health, CacheProbe& probe, SwitchableHealthGate& gate,
                const core::WallClock& clock);
  ~HealthMonitor() override;

  std::string_view name() const override { return "health"; }
  // Closes the gate and starts checking every host at once.
  void start() override;
  // Stops checking; drained once every check in flight has ended (within health.timeout). The
  // gate is left as it is: the responder is stopping too.
  void stop(std::function<void()> drained) override;

  // From any thread.
  HealthSnapshot snapshot() const;
  const HealthCounters& counters() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace pullthrough::health
