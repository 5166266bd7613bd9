#include "app/admin.hpp"

#include "core/asio.hpp"

#include <filesystem>
#include <future>
#include <thread>

#include <boost/asio/thread_pool.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "proxy/local_blob_store.hpp"
#include "tests/core/eventually.hpp"
#include "tests/core/fake_clock.hpp"
#include "tests/proxy/test_support.hpp"

namespace pullthrough::app {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

TEST(Rfc3339Test, FormatsUtcWithMilliseconds) {
  auto when = std::chrono::system_clock::from_time_t(1'800'000'000) + 42ms;
  EXPECT_EQ(format_rfc3339(when), "2027-01-15T08:00:00.042Z");
  EXPECT_EQ(format_rfc3339(std::chrono::system_clock::from_time_t(0)), "1970-01-01T00:00:00.000Z");
}

// A probe whose verdict the test sets; every check is instant.
class SwitchProbe final : public health::CacheProbe {
 public:
  std::atomic<bool> healthy{false};
  asio::awaitable<health::CheckResult> check(const core::Endpoint&,
                                             std::chrono::milliseconds) override {
    co_return healthy ? health::CheckResult{true, "GET /v2/ answered 200", 2ms}
                      : health::CheckResult{false, "connect: Connection refused", 1ms};
  }
};

// The admin pages over a real health monitor (scripted probe) and a real storage monitor on a
// scratch directory.
class AdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = proxy::testing::test_directory("admin");
    config_.storage.path = root_.string();
    config_.storage.min_free = 0;
    config_.health.interval = 10ms;
    config_.health.timeout = 10ms;
    config_.health.rise = 1;
    config_.health.fall = 1;
    store_ = std::make_unique<proxy::LocalBlobStore>(root_.string());
    storage_ = std::make_unique<proxy::StorageMonitor>(io_, disk_.get_executor(), *store_, 0, 10ms,
                                                       clock_);
    auto address = asio::ip::make_address("127.0.0.2");
    health_ = std::make_unique<health::HealthMonitor>(
        io_, std::vector<health::CacheHost>{{address, core::Endpoint{address, 443}}},
        config_.health, probe_, gate_, clock_);
    metrics_.add([](core::MetricsWriter& w) { w.gauge("pullthrough_test_gauge", "a gauge", 3); });
  }

  void TearDown() override {
    if (thread_.joinable()) {
      std::promise<void> drained;
      health_->stop([&] { drained.set_value(); });
      storage_->stop();
      drained.get_future().wait_for(5s);
      work_.reset();
      thread_.join();
    }
    disk_.join();
    fs::remove_all(root_);
  }

  void start() {
    storage_->start();
    health_->start();
    thread_ = std::thread([this] { io_.run(); });
  }

  AdminSources sources(Role role) {
    AdminSources s;
    s.role = role;
    s.config = &config_;
    s.health = role == Role::proxy ? nullptr : health_.get();
    s.storage = role == Role::dns ? nullptr : storage_.get();
    s.metrics = &metrics_;
    s.clock = &clock_;
    return s;
  }

  core::HttpResponse get(const AdminSources& s, const std::string& target,
                         http::verb method = http::verb::get) {
    core::HttpRequest request{method, target, 11};
    core::HttpExchange exchange{request, {}, {}};
    return make_admin_handler(s)(exchange);
  }

  bool rewriting_becomes(bool expected) {
    return core::testing::eventually([&] { return gate_.healthy()->empty() != expected; });
  }

  fs::path root_;
  config::Config config_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  asio::thread_pool disk_{1};
  core::testing::FakeWallClock clock_;
  SwitchProbe probe_;
  health::SwitchableHealthGate gate_;
  core::MetricsRegistry metrics_;
  std::unique_ptr<proxy::LocalBlobStore> store_;
  std::unique_ptr<proxy::StorageMonitor> storage_;
  std::unique_ptr<health::HealthMonitor> health_;
  std::thread thread_;
};

TEST_F(AdminTest, HealthzIs503WithTheReasonUntilACacheIsUp) {
  start();
  ASSERT_TRUE(rewriting_becomes(false));
  auto response = get(sources(Role::all), "/healthz");
  EXPECT_EQ(response.result(), http::status::service_unavailable);
  EXPECT_EQ(response[http::field::content_type], "application/json");
  auto body = nlohmann::json::parse(response.body());
  EXPECT_EQ(body["status"], "unhealthy");
  EXPECT_EQ(body["role"], "all");
  EXPECT_EQ(body["dns"]["rewriting"], false);
  ASSERT_EQ(body["cache_hosts"].size(), 1U);
  EXPECT_EQ(body["cache_hosts"][0]["endpoint"], "127.0.0.2:443");
  EXPECT_EQ(body["cache_hosts"][0]["state"], "down");
  EXPECT_EQ(body["storage"]["ok"], true);
  EXPECT_EQ(body["storage"]["path"], root_.string());
}

TEST_F(AdminTest, HealthzIs200WithTheAddressesHandedOutOnceACacheIsUp) {
  probe_.healthy = true;
  start();
  ASSERT_TRUE(rewriting_becomes(true));
  auto response = get(sources(Role::all), "/healthz");
  EXPECT_EQ(response.result(), http::status::ok);
  auto body = nlohmann::json::parse(response.body());
  EXPECT_EQ(body["status"], "ok");
  EXPECT_EQ(body["dns"]["handed_out"], nlohmann::json::array({"127.0.0.2"}));
  const auto& host = body["cache_hosts"][0];
  EXPECT_EQ(host["state"], "up");
  EXPECT_EQ(host["reason"], "GET /v2/ answered 200");
  EXPECT_EQ(host["last_check"]["ok"], true);
  EXPECT_EQ(host["last_check"]["took_ms"], 2);
  EXPECT_EQ(host["since"], format_rfc3339(clock_.now()));
}

TEST_F(AdminTest, ProxyRoleIsHealthyWhenItsStoreIs) {
  start();
  auto response = get(sources(Role::proxy), "/healthz");
  EXPECT_EQ(response.result(), http::status::ok);
  auto body = nlohmann::json::parse(response.body());
  EXPECT_FALSE(body.contains("cache_hosts"));
  EXPECT_EQ(body["storage"]["state"], "ok");
  EXPECT_TRUE(body["storage"]["free_bytes"].is_number());
}

TEST_F(AdminTest, ProxyRoleWithAFullStoreIs503AndSaysWhy) {
  storage_ = std::make_unique<proxy::StorageMonitor>(
      io_, disk_.get_executor(), *store_, std::numeric_limits<std::uint64_t>::max(), 10ms, clock_);
  start();
  auto response = get(sources(Role::proxy), "/healthz");
  EXPECT_EQ(response.result(), http::status::service_unavailable);
  auto body = nlohmann::json::parse(response.body());
  EXPECT_EQ(body["storage"]["state"], "full");
  EXPECT_THAT(body["storage"]["reason"].get<std::string>(), HasSubstr("storage.min_free"));
}

TEST_F(AdminTest, ALeavingCacheIs503WhateverItsHealth) {
  start();
  auto s = sources(Role::proxy);
  bool leaving = false;
  s.leaving = [&leaving] { return leaving; };
  EXPECT_EQ(get(s, "/healthz").result(), http::status::ok);
  leaving = true;
  auto response = get(s, "/healthz");
  EXPECT_EQ(response.result(), http::status::service_unavailable);
  auto body = nlohmann::json::parse(response.body());
  EXPECT_EQ(body["status"], "leaving");
  EXPECT_EQ(body["storage"]["state"], "ok");
}

TEST_F(AdminTest, DnsRoleShowsNoStorage) {
  start();
  auto body = nlohmann::json::parse(get(sources(Role::dns), "/healthz").body());
  EXPECT_FALSE(body.contains("storage"));
  EXPECT_TRUE(body.contains("cache_hosts"));
}

TEST_F(AdminTest, MetricsAreTheRegistrysTextFormat) {
  start();
  auto response = get(sources(Role::all), "/metrics");
  EXPECT_EQ(response.result(), http::status::ok);
  EXPECT_EQ(response[http::field::content_type], core::kMetricsContentType);
  EXPECT_THAT(response.body(), HasSubstr("# TYPE pullthrough_test_gauge gauge\n"
                                         "pullthrough_test_gauge 3\n"));
}

TEST_F(AdminTest, QueryStringsAreIgnoredAndOtherPathsAre404) {
  start();
  EXPECT_EQ(get(sources(Role::all), "/metrics?x=1").result(), http::status::ok);
  auto missing = get(sources(Role::all), "/../etc/passwd");
  EXPECT_EQ(missing.result(), http::status::not_found);
  EXPECT_THAT(missing.body(), HasSubstr("/healthz, /metrics and /clients"));
}

TEST_F(AdminTest, OnlyGetAndHeadAreAnswered) {
  start();
  auto response = get(sources(Role::all), "/healthz", http::verb::delete_);
  EXPECT_EQ(response.result(), http::status::method_not_allowed);
  EXPECT_EQ(response[http::field::allow], "GET, HEAD");
  EXPECT_EQ(get(sources(Role::all), "/metrics", http::verb::head).result(), http::status::ok);
}

// The clients the DNS side does not intercept for now, and the enrolled set, through the admin.
class AdminClientsTest : public AdminTest {
 protected:
  void SetUp() override {
    AdminTest::SetUp();
    config_.dns.intercept.all_clients = false;
    config_.dns.intercept.enrolled = true;
    scope_ = std::make_unique<health::ClientScope>(
        config_.dns.intercept, health::EnrolledClients(root_ / "enrolled-clients"), steady_,
        clock_);
  }
  AdminSources with_scope() {
    auto s = sources(Role::dns);
    s.scope = scope_.get();
    return s;
  }
  nlohmann::json json(const core::HttpResponse& response) {
    return nlohmann::json::parse(response.body());
  }

  core::testing::FakeClock steady_;
  std::unique_ptr<health::ClientScope> scope_;
};

TEST_F(AdminClientsTest, HealthzListsBypassedClientsWithSinceUntilAndAlert) {
  scope_->learn_untrusted(*core::parse_ip("192.168.1.7"), health::CertificateAlert::unknown_ca, 0ms,
                          "test");
  auto body = json(get(with_scope(), "/healthz"));
  const auto& clients = body.at("clients");
  EXPECT_EQ(clients.at("intercept"), "enrolled");
  EXPECT_EQ(clients.at("untrusted_bypass"), "1h");
  ASSERT_EQ(clients.at("bypassed").size(), 1U);
  const auto& bypassed = clients.at("bypassed")[0];
  EXPECT_EQ(bypassed.at("address"), "192.168.1.7");
  EXPECT_EQ(bypassed.at("since"), format_rfc3339(clock_.now()));
  EXPECT_EQ(bypassed.at("until"), format_rfc3339(clock_.now() + 1h));
  EXPECT_EQ(bypassed.at("alert"), "unknown_ca");
  EXPECT_EQ(clients.at("enrolled"), 0);
}

TEST_F(AdminClientsTest, ClientsAreAddedListedAndRemoved) {
  auto added = get(with_scope(), "/clients/192.168.1.8", http::verb::put);
  EXPECT_EQ(added.result(), http::status::ok);
  EXPECT_THAT(added.body(), HasSubstr("enrolled 192.168.1.8"));
  EXPECT_TRUE(scope_->intercepts(*core::parse_ip("192.168.1.8")));
  EXPECT_THAT(get(with_scope(), "/clients/192.168.1.8", http::verb::put).body(),
              HasSubstr("was enrolled already"));

  auto listed = json(get(with_scope(), "/clients"));
  ASSERT_EQ(listed.at("enrolled").size(), 1U);
  EXPECT_EQ(listed.at("enrolled")[0].at("address"), "192.168.1.8");
  EXPECT_EQ(listed.at("enrolled")[0].at("via"), "admin");
  EXPECT_EQ(listed.at("bypassed").size(), 0U);

  EXPECT_EQ(get(with_scope(), "/clients/192.168.1.8", http::verb::delete_).result(),
            http::status::ok);
  EXPECT_FALSE(scope_->intercepts(*core::parse_ip("192.168.1.8")));
  EXPECT_EQ(get(with_scope(), "/clients/192.168.1.8", http::verb::delete_).result(),
            http::status::not_found);
}

TEST_F(AdminClientsTest, BadRequestsAreRefusedClearly) {
  EXPECT_EQ(get(with_scope(), "/clients/not-an-address", http::verb::put).result(),
            http::status::bad_request);
  EXPECT_EQ(get(with_scope(), "/clients/192.168.1.8").result(), http::status::method_not_allowed);
  EXPECT_EQ(get(with_scope(), "/clients", http::verb::put).result(),
            http::status::method_not_allowed);
  // A cache alone keeps no enrolled set.
  auto proxy_only = get(sources(Role::proxy), "/clients");
  EXPECT_EQ(proxy_only.result(), http::status::not_found);
  EXPECT_THAT(proxy_only.body(), HasSubstr("no DNS role"));
}

}  // namespace
}  // namespace pullthrough::app
