#include "app/metrics.hpp"

#include "core/asio.hpp"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/loader.hpp"
#include "tests/core/metrics_shape.hpp"
#include "tests/proxy/server_tls_fixture.hpp"
#include "tests/proxy/test_support.hpp"

namespace pullthrough::app {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Never called: the monitor is not started.
class IdleProbe final : public health::CacheProbe {
 public:
  asio::awaitable<health::CheckResult> check(const core::Endpoint&,
                                             std::chrono::milliseconds) override {
    co_return health::CheckResult{false, "not checked", 0ms};
  }
};

// tests/app/metrics_families.txt, without its comment lines.
std::vector<std::string> golden_families() {
  std::ifstream in(std::string(PULLTHROUGH_SOURCE_DIR) + "/tests/app/metrics_families.txt");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && !line.starts_with("//")) lines.push_back(line);
  }
  return lines;
}

// Every component of `--role all` with a CA page and upstream resolvers, built as serve() builds
// them; only the cache is started, so that its store has been checked once.
class AppMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = proxy::testing::test_directory("app-metrics");
    config_ = *config::load_string("state_dir: " + root_.string() +
                                       "\n"
                                       "storage: {path: " +
                                       (root_ / "store").string() +
                                       "}\n"
                                       "proxy: {listen: [\"127.0.0.1:0\"]}\n",
                                   "t.yaml")
                   .config;
    ASSERT_FALSE(config_.registries.empty());
    server_ = std::make_unique<proxy::testing::TestServerTls>(config_, root_);
    scope_ = std::make_unique<health::ClientScope>(
        config_.dns.intercept, health::EnrolledClients(root_ / "enrolled-clients"), clock_,
        wall_clock_);
    trust_ = std::make_unique<proxy::ClientTrust>(config_, clock_, wall_clock_, scope_.get());
    responder_ = std::make_unique<dns::Responder>(io_, config_.dns,
                                                  dns::intercepted_names(config_.registries), gate_,
                                                  forwarder_, clock_, scope_.get());
    auto address = asio::ip::make_address("127.0.0.77");
    monitor_ = std::make_unique<health::HealthMonitor>(
        io_, std::vector<health::CacheHost>{{address, core::Endpoint{address, 443}}},
        config_.health, probe_, gate_, wall_clock_);
    cache_ = std::make_unique<proxy::RegistryCache>(io_, config_, server_->tls, resolver_,
                                                    std::vector<core::IpAddress>{}, trust_.get());
    cache_->start();
  }

  void TearDown() override {
    EXPECT_TRUE(proxy::testing::stop_and_drain(io_, *cache_));
    cache_.reset();
    fs::remove_all(root_);
  }

  MetricsSources full_appliance() const {
    MetricsSources s;
    s.config = &config_;
    s.responder = responder_.get();
    s.forwarder = &forwarder_;
    s.gate = &gate_;
    s.monitor = monitor_.get();
    s.scope = scope_.get();
    s.cache = cache_.get();
    s.trust = trust_.get();
    s.tls = &server_->tls;
    s.resolver = &resolver_;
    s.resolver_forwarder = &resolver_forwarder_;
    s.ca_page = &ca_page_;
    s.admin = &admin_;
    return s;
  }

  fs::path root_;
  config::Config config_;
  asio::io_context io_;
  core::SteadyClock clock_;
  core::SystemWallClock wall_clock_;
  health::SwitchableHealthGate gate_;
  IdleProbe probe_;
  std::vector<core::Endpoint> nowhere_{core::Endpoint{asio::ip::make_address("127.0.0.1"), 1}};
  dns::Forwarder forwarder_{io_, nowhere_, 1s};
  dns::Forwarder resolver_forwarder_{io_, nowhere_, 1s};
  dns::AddressResolver resolver_{io_, resolver_forwarder_, clock_};
  core::HttpService ca_page_{io_, "ca-page", nowhere_, {}, core::HttpHandler{}};
  core::HttpService admin_{io_, "admin", nowhere_, {}, core::HttpHandler{}};
  std::unique_ptr<proxy::testing::TestServerTls> server_;
  std::unique_ptr<health::ClientScope> scope_;
  std::unique_ptr<proxy::ClientTrust> trust_;
  std::unique_ptr<dns::Responder> responder_;
  std::unique_ptr<health::HealthMonitor> monitor_;
  std::unique_ptr<proxy::RegistryCache> cache_;
};

// Dashboards and alerts name these families: a rename is a break for their users, so it must
// show here. A new family is added to the list on purpose.
TEST_F(AppMetricsTest, AFullApplianceExposesTheKnownFamilies) {
  core::MetricsRegistry metrics;
  register_metrics(metrics, full_appliance());
  auto text = metrics.render();
  auto golden = golden_families();
  ASSERT_GT(golden.size(), 100U);
  EXPECT_EQ(core::testing::metrics_shape(text), golden) << text;
}

// Families appear once each, whichever collectors wrote them.
TEST_F(AppMetricsTest, EveryFamilyIsWrittenOnce) {
  core::MetricsRegistry metrics;
  register_metrics(metrics, full_appliance());
  std::istringstream in(metrics.render());
  std::set<std::string> seen;
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("# TYPE ")) {
      EXPECT_TRUE(seen.insert(line).second) << line;
    }
  }
}

TEST_F(AppMetricsTest, ARoleWritesOnlyItsComponents) {
  MetricsSources proxy_only = full_appliance();
  proxy_only.responder = nullptr;
  proxy_only.forwarder = nullptr;
  proxy_only.gate = nullptr;
  proxy_only.monitor = nullptr;
  proxy_only.scope = nullptr;
  core::MetricsRegistry metrics;
  register_metrics(metrics, proxy_only);
  auto text = metrics.render();
  EXPECT_THAT(text, ::testing::Not(::testing::HasSubstr("pullthrough_dns_")));
  EXPECT_THAT(text, ::testing::Not(::testing::HasSubstr("pullthrough_health_")));
  EXPECT_THAT(text, ::testing::HasSubstr("# TYPE pullthrough_proxy_requests_total counter"));
  EXPECT_THAT(text, ::testing::HasSubstr("pullthrough_admin_http_"));
  EXPECT_THAT(text, ::testing::HasSubstr("pullthrough_build_info{version="));
}

}  // namespace
}  // namespace pullthrough::app
