#include "health/metrics.hpp"

#include "core/asio.hpp"

#include <future>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/core/eventually.hpp"
#include "tests/core/fake_clock.hpp"

namespace pullthrough::health {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

// Passes every check of 127.0.0.2 in 2 ms, fails every other host's in 1 ms.
class ScriptedProbe final : public CacheProbe {
 public:
  asio::awaitable<CheckResult> check(const core::Endpoint& endpoint,
                                     std::chrono::milliseconds) override {
    if (endpoint.address == asio::ip::make_address("127.0.0.2")) {
      co_return CheckResult{true, "GET /v2/ answered 200", 2ms};
    }
    co_return CheckResult{false, "connect: Connection refused", 1ms};
  }
};

CacheHost host(const char* address) {
  auto ip = asio::ip::make_address(address);
  return CacheHost{ip, core::Endpoint{ip, 443}};
}

class HealthMetricsTest : public ::testing::Test {
 protected:
  HealthMetricsTest() {
    config_.interval = 10ms;
    config_.timeout = 10ms;
    config_.rise = 1;
    config_.fall = 1;
  }

  // Runs the monitor until both hosts have been checked, then stops it: the values hold still.
  std::string render_after_checks() {
    HealthMonitor monitor(io_, {host("127.0.0.2"), host("127.0.0.3")}, config_, probe_, gate_,
                          clock_);
    monitor.start();
    std::thread worker([this] { io_.run(); });
    EXPECT_TRUE(core::testing::eventually([&] {
      auto snapshot = monitor.snapshot();
      return snapshot.hosts.size() == 2 && snapshot.hosts[0].health.up() &&
             snapshot.hosts[1].health.checked();
    }));
    std::promise<void> drained;
    asio::post(io_, [&] { monitor.stop([&] { drained.set_value(); }); });
    EXPECT_EQ(drained.get_future().wait_for(5s), std::future_status::ready);
    worker.join();
    core::MetricsWriter w;
    write_metrics(w, monitor);
    checks_ = monitor.snapshot().hosts[0].health.checks();
    return w.take();
  }

  config::HealthConfig config_;
  asio::io_context io_;
  core::testing::FakeWallClock clock_;
  ScriptedProbe probe_;
  SwitchableHealthGate gate_;
  std::uint64_t checks_ = 0;
};

TEST_F(HealthMetricsTest, EachHostHasItsStateChecksAndLastDuration) {
  auto text = render_after_checks();
  EXPECT_THAT(text, HasSubstr("# TYPE pullthrough_health_cache_host_up gauge\n"
                              "pullthrough_health_cache_host_up{host=\"127.0.0.2:443\"} 1\n"
                              "pullthrough_health_cache_host_up{host=\"127.0.0.3:443\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("pullthrough_health_cache_host_checks_total{host=\"127.0.0.2:443\","
                              "result=\"passed\"} " +
                              std::to_string(checks_) +
                              "\n"
                              "pullthrough_health_cache_host_checks_total{host=\"127.0.0.2:443\","
                              "result=\"failed\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("pullthrough_health_cache_host_check_duration_seconds{host=\""
                              "127.0.0.2:443\"} 0.002\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE pullthrough_health_cache_host_state_since_seconds gauge\n"
                              "pullthrough_health_cache_host_state_since_seconds{host=\"127.0.0.2:"
                              "443\"} "));
}

TEST_F(HealthMetricsTest, TheMonitorsOwnCountersAreThere) {
  auto text = render_after_checks();
  EXPECT_THAT(text, HasSubstr("# TYPE pullthrough_health_hosts_up_total counter\n"
                              "pullthrough_health_hosts_up_total 1\n"));
  EXPECT_THAT(text, HasSubstr("\npullthrough_health_checks_passed_total " +
                              std::to_string(checks_) + "\n"));
}

}  // namespace
}  // namespace pullthrough::health
