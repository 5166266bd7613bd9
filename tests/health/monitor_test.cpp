#include "health/monitor.hpp"

#include "core/asio.hpp"

#include <atomic>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "tests/core/eventually.hpp"
#include "tests/core/fake_clock.hpp"

namespace pullthrough::health {
namespace {

using namespace std::chrono_literals;
using core::testing::FakeWallClock;

CheckResult pass() { return CheckResult{true, "GET /v2/ answered 200", 3ms}; }
CheckResult fail(std::string why = "connect: Connection refused") {
  return CheckResult{false, std::move(why), 1ms};
}

// --- the rise/fall state machine, on a fake clock -------------------------------------------

class HostHealthTest : public ::testing::Test {
 protected:
  // Records one check a second after the previous one.
  bool check(HostHealth& host, CheckResult result) {
    clock_.advance(1s);
    return host.record(std::move(result), clock_.now());
  }
  FakeWallClock clock_;
};

TEST_F(HostHealthTest, StartsDownUntilRiseConsecutivePasses) {
  HostHealth host(3, 2, clock_.now());
  EXPECT_FALSE(host.up());
  EXPECT_FALSE(host.checked());
  EXPECT_FALSE(check(host, pass()));
  EXPECT_FALSE(check(host, pass()));
  EXPECT_FALSE(host.up());
  EXPECT_EQ(host.streak(), 2U);
  EXPECT_TRUE(check(host, pass()));
  EXPECT_TRUE(host.up());
  EXPECT_EQ(host.streak(), 0U);
}

TEST_F(HostHealthTest, GoesDownAfterFallConsecutiveFailures) {
  HostHealth host(1, 3, clock_.now());
  ASSERT_TRUE(check(host, pass()));
  EXPECT_FALSE(check(host, fail()));
  EXPECT_FALSE(check(host, fail()));
  EXPECT_TRUE(host.up());
  EXPECT_TRUE(check(host, fail("no answer within 1s (TLS handshake)")));
  EXPECT_FALSE(host.up());
  EXPECT_EQ(host.reason(), "no answer within 1s (TLS handshake)");
}

TEST_F(HostHealthTest, APassBetweenFailuresStartsTheFallCountAgain) {
  HostHealth host(1, 2, clock_.now());
  ASSERT_TRUE(check(host, pass()));
  EXPECT_FALSE(check(host, fail()));
  EXPECT_FALSE(check(host, pass()));
  EXPECT_EQ(host.streak(), 0U);
  EXPECT_FALSE(check(host, fail()));
  EXPECT_TRUE(host.up());
  EXPECT_TRUE(check(host, fail()));
  EXPECT_FALSE(host.up());
}

TEST_F(HostHealthTest, FlappingHostNeverComesUp) {
  HostHealth host(2, 2, clock_.now());
  for (int i = 0; i < 20; ++i) {
    EXPECT_FALSE(check(host, i % 2 == 0 ? pass() : fail()));
  }
  EXPECT_FALSE(host.up());
  EXPECT_EQ(host.checks(), 20U);
  EXPECT_EQ(host.failures(), 10U);
}

TEST_F(HostHealthTest, FlappingHostThatIsUpStaysUp) {
  HostHealth host(2, 2, clock_.now());
  check(host, pass());
  ASSERT_TRUE(check(host, pass()));
  for (int i = 0; i < 20; ++i) {
    EXPECT_FALSE(check(host, i % 2 == 0 ? fail() : pass()));
  }
  EXPECT_TRUE(host.up());
}

TEST_F(HostHealthTest, RecordsWhenAndWhyItLastMoved) {
  auto created = clock_.now();
  HostHealth host(1, 1, created);
  EXPECT_EQ(host.since(), created);
  EXPECT_TRUE(check(host, pass()));
  auto went_up = clock_.now();
  EXPECT_EQ(host.since(), went_up);
  EXPECT_EQ(host.reason(), "GET /v2/ answered 200");
  EXPECT_FALSE(check(host, pass()));
  EXPECT_EQ(host.since(), went_up);  // a check that changes nothing does not move `since`
  EXPECT_EQ(host.last_at(), clock_.now());
  EXPECT_TRUE(check(host, fail("the cache reports its storage full")));
  EXPECT_EQ(host.since(), clock_.now());
  EXPECT_EQ(host.reason(), "the cache reports its storage full");
  EXPECT_EQ(host.last().detail, "the cache reports its storage full");
}

TEST_F(HostHealthTest, RiseAndFallOfOneMoveOnEveryChange) {
  HostHealth host(1, 1, clock_.now());
  EXPECT_TRUE(check(host, pass()));
  EXPECT_TRUE(check(host, fail()));
  EXPECT_TRUE(check(host, pass()));
  EXPECT_FALSE(check(host, pass()));
}

TEST_F(HostHealthTest, FailuresWhileDownKeepItDown) {
  HostHealth host(2, 2, clock_.now());
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(check(host, fail()));
  EXPECT_FALSE(host.up());
  EXPECT_EQ(host.streak(), 0U);
}

TEST_F(HostHealthTest, ACacheThatSaysItIsLeavingGoesDownAtOnce) {
  HostHealth host(2, 3, clock_.now());
  ASSERT_FALSE(check(host, pass()));
  ASSERT_TRUE(check(host, pass()));
  CheckResult leaving{false, "the cache is leaving (shutdown)", 2ms, true};
  EXPECT_TRUE(check(host, leaving));
  EXPECT_FALSE(host.up());
  EXPECT_EQ(host.reason(), "the cache is leaving (shutdown)");
  // Back only after `rise` passes, as after any other move down.
  EXPECT_FALSE(check(host, leaving));
  EXPECT_FALSE(check(host, pass()));
  EXPECT_TRUE(check(host, pass()));
}

// --- the monitor, with a scripted probe -----------------------------------------------------

// Each host's next results come from a script the test sets; a host without one fails.
class ScriptedProbe final : public CacheProbe {
 public:
  void set(std::uint16_t port, bool ok) {
    std::lock_guard lock(mutex_);
    healthy_[port] = ok;
  }
  int checks(std::uint16_t port) const {
    std::lock_guard lock(mutex_);
    auto found = counts_.find(port);
    return found == counts_.end() ? 0 : found->second;
  }
  int overlapping() const { return overlapping_; }
  std::chrono::milliseconds last_timeout() const { return last_timeout_; }

  asio::awaitable<CheckResult> check(const core::Endpoint& target,
                                     std::chrono::milliseconds timeout) override {
    if (++in_flight_[target.port] > 1) ++overlapping_;
    bool ok = false;
    {
      std::lock_guard lock(mutex_);
      ++counts_[target.port];
      auto found = healthy_.find(target.port);
      ok = found != healthy_.end() && found->second;
    }
    last_timeout_ = timeout;
    // A check takes a little while, as a real one does.
    asio::steady_timer pause(co_await asio::this_coro::executor, 2ms);
    co_await pause.async_wait(asio::use_awaitable);
    --in_flight_[target.port];
    co_return ok ? pass() : fail();
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::uint16_t, bool> healthy_;
  std::map<std::uint16_t, int> counts_;
  std::map<std::uint16_t, int> in_flight_;  // the monitor's strand only
  std::atomic<int> overlapping_{0};
  std::chrono::milliseconds last_timeout_{0};
};

CacheHost host(const char* address, std::uint16_t port) {
  auto ip = asio::ip::make_address(address);
  return CacheHost{ip, core::Endpoint{ip, port}};
}

class HealthMonitorTest : public ::testing::Test {
 protected:
  HealthMonitorTest() {
    health_.interval = 20ms;
    health_.timeout = 15ms;
    health_.rise = 2;
    health_.fall = 2;
  }
  ~HealthMonitorTest() override { stop(); }

  void start(std::vector<CacheHost> hosts) {
    monitor_ =
        std::make_unique<HealthMonitor>(io_, std::move(hosts), health_, probe_, gate_, clock_);
    monitor_->start();
    thread_ = std::thread([this] { io_.run(); });
  }

  void stop() {
    if (!thread_.joinable()) return;
    std::promise<void> drained;
    monitor_->stop([&] { drained.set_value(); });
    EXPECT_EQ(drained.get_future().wait_for(5s), std::future_status::ready);
    work_.reset();
    thread_.join();
  }

  std::vector<std::string> handed_out() const {
    std::vector<std::string> out;
    // Held for the loop: a range-for keeps `*gate_.healthy()` but not the shared_ptr it came
    // from, which the monitor may replace meanwhile (UBSan saw the freed list once).
    auto healthy = gate_.healthy();
    for (const auto& address : *healthy) out.push_back(address.to_string());
    return out;
  }

  // Waits up to 3 s for the gate to hand out exactly `expected`.
  bool gate_becomes(const std::vector<std::string>& expected) const {
    return core::testing::eventually([&] { return handed_out() == expected; });
  }

  asio::io_context io_;
  // The app's io_context runs until every service has drained; so does this one.
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  config::HealthConfig health_;
  ScriptedProbe probe_;
  SwitchableHealthGate gate_;
  FakeWallClock clock_;
  std::unique_ptr<HealthMonitor> monitor_;
  std::thread thread_;
};

TEST_F(HealthMonitorTest, GateStartsClosedAndOpensOnlyAfterRisePasses) {
  gate_.set({asio::ip::make_address("192.0.2.99")});  // left open by someone before start
  probe_.set(1001, true);
  start({host("127.0.0.2", 1001)});
  EXPECT_TRUE(handed_out().empty() || probe_.checks(1001) >= 2)
      << "the gate must close at start and open only after " << health_.rise << " passes";
  ASSERT_TRUE(gate_becomes({"127.0.0.2"}));
  EXPECT_GE(probe_.checks(1001), 2);
  EXPECT_EQ(monitor_->counters().hosts_up.value(), 1U);
}

TEST_F(HealthMonitorTest, HandsOutOnlyHealthyHostsInConfigurationOrder) {
  probe_.set(1001, true);
  probe_.set(1002, false);
  probe_.set(1003, true);
  start({host("127.0.0.2", 1001), host("127.0.0.3", 1002), host("127.0.0.4", 1003)});
  ASSERT_TRUE(gate_becomes({"127.0.0.2", "127.0.0.4"}));
  probe_.set(1002, true);
  ASSERT_TRUE(gate_becomes({"127.0.0.2", "127.0.0.3", "127.0.0.4"}));
  probe_.set(1001, false);
  ASSERT_TRUE(gate_becomes({"127.0.0.3", "127.0.0.4"}));
}

TEST_F(HealthMonitorTest, ClosesTheGateWhenEveryHostIsDownAndReopensOnRecovery) {
  probe_.set(1001, true);
  start({host("127.0.0.2", 1001)});
  ASSERT_TRUE(gate_becomes({"127.0.0.2"}));
  probe_.set(1001, false);
  ASSERT_TRUE(gate_becomes({}));
  EXPECT_EQ(monitor_->counters().hosts_down.value(), 1U);
  probe_.set(1001, true);
  ASSERT_TRUE(gate_becomes({"127.0.0.2"}));
  EXPECT_EQ(monitor_->counters().hosts_up.value(), 2U);
}

TEST_F(HealthMonitorTest, SnapshotShowsEachHostsStateAndLastCheck) {
  probe_.set(1001, true);
  start({host("127.0.0.2", 1001), host("::1", 1002)});
  ASSERT_TRUE(gate_becomes({"127.0.0.2"}));
  auto snapshot = monitor_->snapshot();
  ASSERT_EQ(snapshot.hosts.size(), 2U);
  EXPECT_EQ(snapshot.handed_out.size(), 1U);
  EXPECT_TRUE(snapshot.hosts[0].health.up());
  EXPECT_TRUE(snapshot.hosts[0].health.last().ok);
  EXPECT_EQ(snapshot.hosts[0].health.reason(), "GET /v2/ answered 200");
  EXPECT_FALSE(snapshot.hosts[1].health.up());
  EXPECT_TRUE(snapshot.hosts[1].health.checked());
  EXPECT_FALSE(snapshot.hosts[1].health.last().ok);
  EXPECT_EQ(snapshot.hosts[1].health.last().detail, "connect: Connection refused");
  EXPECT_EQ(snapshot.hosts[1].host.endpoint.to_string(), "[::1]:1002");
  EXPECT_EQ(snapshot.hosts[0].health.last_at(), clock_.now());
}

TEST_F(HealthMonitorTest, ChecksOneHostAtATimeWithTheConfiguredTimeout) {
  health_.interval = 1ms;  // shorter than a check: the next one waits for the last
  probe_.set(1001, true);
  start({host("127.0.0.2", 1001)});
  auto deadline = std::chrono::steady_clock::now() + 3s;
  while (probe_.checks(1001) < 20 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_GE(probe_.checks(1001), 20);
  EXPECT_EQ(probe_.overlapping(), 0);
  EXPECT_EQ(probe_.last_timeout(), 15ms);
}

TEST_F(HealthMonitorTest, NoHostsMeansTheGateStaysClosed) {
  start({});
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(handed_out().empty());
  EXPECT_TRUE(monitor_->snapshot().hosts.empty());
}

TEST_F(HealthMonitorTest, StopEndsEveryLoop) {
  probe_.set(1001, true);
  start({host("127.0.0.2", 1001), host("127.0.0.3", 1002)});
  ASSERT_TRUE(gate_becomes({"127.0.0.2"}));
  stop();
  int after = probe_.checks(1001);
  std::this_thread::sleep_for(60ms);
  EXPECT_EQ(probe_.checks(1001), after);
}

}  // namespace
}  // namespace pullthrough::health
