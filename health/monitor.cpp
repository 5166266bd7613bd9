#include "health/monitor.hpp"

#include "core/asio.hpp"

#include <mutex>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "core/gate.hpp"
#include "core/logging.hpp"
#include "core/spawn.hpp"
#include "core/units.hpp"

namespace pullthrough::health {

HostHealth::HostHealth(std::uint32_t rise, std::uint32_t fall, TimePoint created)
    : rise_(std::max<std::uint32_t>(rise, 1)),
      fall_(std::max<std::uint32_t>(fall, 1)),
      since_(created) {}

bool HostHealth::record(CheckResult result, TimePoint at) {
  ++checks_;
  if (!result.ok) ++failures_;
  bool agrees = result.ok == up_;
  streak_ = agrees ? 0 : streak_ + 1;
  bool leaving = up_ && result.leaving;
  last_ = std::move(result);
  last_at_ = at;
  if (!leaving && streak_ < (up_ ? fall_ : rise_)) return false;
  up_ = !up_;
  streak_ = 0;
  since_ = at;
  reason_ = last_.detail;
  return true;
}

namespace {

std::string join_addresses(const std::vector<core::IpAddress>& addresses) {
  std::string out;
  for (const auto& address : addresses) {
    if (!out.empty()) out += ", ";
    out += address.to_string();
  }
  return out;
}

}  // namespace

struct HealthMonitor::State : std::enable_shared_from_this<State> {
  struct Host {
    CacheHost target;
    HostHealth health;
    asio::steady_timer* timer = nullptr;  // while the host's loop waits; strand only
  };

  State(asio::io_context& io, std::vector<CacheHost> cache_hosts,
        const config::HealthConfig& health, CacheProbe& cache_probe,
        SwitchableHealthGate& health_gate, const core::WallClock& wall_clock)
      : strand(asio::make_strand(io)),
        interval(std::chrono::duration_cast<std::chrono::milliseconds>(health.interval)),
        timeout(std::chrono::duration_cast<std::chrono::milliseconds>(health.timeout)),
        rise(health.rise),
        fall(health.fall),
        probe(cache_probe),
        gate(health_gate),
        clock(wall_clock),
        log(core::logger("health")) {
    auto now = clock.now();
    for (auto& target : cache_hosts) {
      hosts.push_back(Host{std::move(target), HostHealth(health.rise, health.fall, now)});
    }
  }

  // `hold` keeps the monitor's gate entered, and `self` the state alive, until the loop ends.
  asio::awaitable<void> watch(std::size_t index, [[maybe_unused]] core::GateHolder hold) {
    auto self = shared_from_this();
    asio::steady_timer timer(strand);
    auto next = std::chrono::steady_clock::now();
    while (!stopped) {
      CheckResult result;
      try {
        result = co_await probe.check(hosts[index].target.endpoint, timeout);
      } catch (const std::exception& e) {
        // A probe that cannot even run (out of memory, descriptors) fails the check; the loop,
        // and so the host's watch, goes on.
        result = CheckResult{false, std::string("check could not run: ") + e.what(), {}};
      }
      if (stopped) break;
      record(index, std::move(result));
      // Checks start on a fixed beat; one that ran past it starts the next at once.
      next += interval;
      next = std::max(next, std::chrono::steady_clock::now());
      timer.expires_at(next);
      hosts[index].timer = &timer;
      boost::system::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      hosts[index].timer = nullptr;
    }
  }

  void record(std::size_t index, CheckResult result) {
    auto at = clock.now();
    (result.ok ? counters.checks_passed : counters.checks_failed).add();
    Host& host = hosts[index];
    std::vector<core::IpAddress> now_handed_out;
    bool was_open = false;
    {
      std::lock_guard lock(mutex);
      if (!host.health.record(std::move(result), at)) return;
      was_open = !handed_out.empty();
      handed_out.clear();
      for (const auto& h : hosts) {
        if (h.health.up()) handed_out.push_back(h.target.address);
      }
      now_handed_out = handed_out;
    }
    auto where = host.target.endpoint.to_string();
    if (host.health.up()) {
      counters.hosts_up.add();
      log->info("cache {} is up: {}", where, host.health.reason());
    } else {
      counters.hosts_down.add();
      log->warn("cache {} is down: {}", where, host.health.reason());
    }
    gate.set(now_handed_out);
    if (now_handed_out.empty()) {
      log->warn("no healthy cache: intercepted names are forwarded to the real registries");
    } else {
      log->info("{} intercepted names to {}", was_open ? "now rewriting" : "rewriting",
                join_addresses(now_handed_out));
    }
  }

  asio::strand<asio::io_context::executor_type> strand;
  std::chrono::milliseconds interval;
  std::chrono::milliseconds timeout;
  std::uint32_t rise;
  std::uint32_t fall;
  CacheProbe& probe;
  SwitchableHealthGate& gate;
  const core::WallClock& clock;
  std::shared_ptr<spdlog::logger> log;
  HealthCounters counters;
  core::Gate running;
  bool stopped = false;  // strand only
  // Guards each host's HostHealth and `handed_out` against snapshot() from other threads; the
  // strand is the only writer.
  mutable std::mutex mutex;
  std::vector<Host> hosts;
  std::vector<core::IpAddress> handed_out;
};

HealthMonitor::HealthMonitor(asio::io_context& io, std::vector<CacheHost> hosts,
                             const config::HealthConfig& health, CacheProbe& probe,
                             SwitchableHealthGate& gate, const core::WallClock& clock)
    : state_(std::make_shared<State>(io, std::move(hosts), health, probe, gate, clock)) {}

HealthMonitor::~HealthMonitor() = default;

void HealthMonitor::start() {
  state_->gate.close();
  if (state_->hosts.empty()) {
    state_->log->warn(
        "no cache hosts to check: intercepted names are forwarded to the real registries");
    return;
  }
  std::string watched;
  for (const auto& host : state_->hosts) {
    if (!watched.empty()) watched += ", ";
    watched += host.target.endpoint.to_string();
  }
  state_->log->info(
      "checking {} every {} (timeout {}; down after {} failed checks, up after {} passed)", watched,
      core::format_duration(state_->interval), core::format_duration(state_->timeout), state_->fall,
      state_->rise);
  for (std::size_t i = 0; i < state_->hosts.size(); ++i) {
    core::GateHolder running(state_->running);
    core::spawn_logged(state_->strand, state_->watch(i, std::move(running)), state_->log,
                       "health check loop ended");
  }
}

void HealthMonitor::stop(std::function<void()> drained) {
  asio::post(state_->strand, [state = state_, drained = std::move(drained)]() mutable {
    state->stopped = true;
    for (auto& host : state->hosts) {
      if (host.timer != nullptr) host.timer->cancel();
    }
    state->running.close(std::move(drained));
  });
}

HealthSnapshot HealthMonitor::snapshot() const {
  HealthSnapshot snapshot;
  std::lock_guard lock(state_->mutex);
  snapshot.handed_out = state_->handed_out;
  for (const auto& host : state_->hosts) {
    snapshot.hosts.push_back(HostStatus{host.target, host.health});
  }
  return snapshot;
}

const HealthCounters& HealthMonitor::counters() const { return state_->counters; }

}  // namespace pullthrough::health
