#include "proxy/client_trust.hpp"

#include "core/asio.hpp"

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/loader.hpp"
#include "core/net.hpp"
#include "dns/address_resolver.hpp"
#include "dns/forwarder.hpp"
#include "health/cache_probe.hpp"
#include "proxy/registry_cache.hpp"
#include "tests/core/fake_clock.hpp"
#include "tests/proxy/server_tls_fixture.hpp"
#include "tests/proxy/test_support.hpp"

namespace pullthrough::proxy {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using health::CertificateAlert;
using health::ClientEventKind;
using ::testing::HasSubstr;
using Outcome = ClientTrust::Enrolled::Outcome;

core::IpAddress ip(const char* text) { return *core::parse_ip(text); }

class ClientTrustTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::test_directory("client-trust");
    fs::create_directories(dir_);
    config_.dns.allow = {*core::Cidr::parse("10.0.0.0/8")};
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<health::ClientScope> make_scope() {
    return std::make_unique<health::ClientScope>(
        config_.dns.intercept, health::EnrolledClients(dir_ / "enrolled-clients"), clock_, wall_);
  }

  fs::path dir_;
  config::Config config_;
  core::testing::FakeClock clock_;
  core::testing::FakeWallClock wall_;
};

TEST_F(ClientTrustTest, AnUntrustingClientIsReportedOncePerBypass) {
  auto scope = make_scope();
  ClientTrust trust(config_, clock_, wall_, scope.get());
  trust.untrusted(ip("::ffff:10.0.0.5"), CertificateAlert::bad_certificate);
  trust.untrusted(ip("10.0.0.5"), CertificateAlert::bad_certificate);
  clock_.advance(30min);
  trust.untrusted(ip("10.0.0.5"), CertificateAlert::unknown_ca);
  EXPECT_EQ(trust.counters().untrusted_clients.value(), 1U);
  EXPECT_EQ(scope->verdict(ip("10.0.0.5")), health::ClientScope::Verdict::bypassed);
  auto batch = trust.events().after(std::nullopt);
  ASSERT_EQ(batch.events.size(), 1U);
  EXPECT_EQ(batch.events[0].event.client, ip("10.0.0.5"));
  EXPECT_EQ(batch.events[0].event.alert, CertificateAlert::bad_certificate);
  auto listed = trust.untrusted_now();
  ASSERT_EQ(listed.size(), 1U);
  EXPECT_EQ(listed[0].until, wall_.now() + 30min);

  clock_.advance(31min);  // the hour is up: a new failure is a new report
  trust.untrusted(ip("10.0.0.5"), CertificateAlert::unknown_ca);
  EXPECT_EQ(trust.counters().untrusted_clients.value(), 2U);
  EXPECT_EQ(trust.events().after(batch.cursor).events.size(), 1U);
}

TEST_F(ClientTrustTest, EnrollingClearsTheBypassHereAndOnTheDnsSide) {
  auto scope = make_scope();
  ClientTrust trust(config_, clock_, wall_, scope.get());
  trust.untrusted(ip("10.0.0.5"), CertificateAlert::unknown_ca);
  auto enrolled = trust.enroll(ip("10.0.0.5"));
  EXPECT_EQ(enrolled.outcome, Outcome::enrolled);
  EXPECT_THAT(enrolled.message, HasSubstr("enrolled 10.0.0.5"));
  EXPECT_EQ(scope->verdict(ip("10.0.0.5")), health::ClientScope::Verdict::intercept);
  EXPECT_EQ(scope->enrolled_count(), 1U);
  EXPECT_TRUE(trust.untrusted_now().empty());
  auto batch = trust.events().after(std::nullopt);
  ASSERT_EQ(batch.events.size(), 2U);
  EXPECT_EQ(batch.events[1].event.kind, ClientEventKind::enrolled);
  EXPECT_EQ(trust.counters().enroll_accepted.value(), 1U);
}

TEST_F(ClientTrustTest, AnEnrollmentThatCannotBeWrittenFailsAndTellsNoOne) {
  fs::create_directories(dir_ / "enrolled-clients.tmp");  // the temporary file cannot be made
  auto scope = make_scope();
  ClientTrust trust(config_, clock_, wall_, scope.get());
  auto failed = trust.enroll(ip("10.0.0.5"));
  EXPECT_EQ(failed.outcome, Outcome::failed);
  EXPECT_THAT(failed.message, HasSubstr("enrolled-clients.tmp"));
  EXPECT_TRUE(trust.events().after(std::nullopt).events.empty());
  EXPECT_EQ(trust.counters().enroll_failed.value(), 1U);
}

TEST_F(ClientTrustTest, OnlyDnsClientsMayEnroll) {
  ClientTrust trust(config_, clock_, wall_, nullptr);
  auto refused = trust.enroll(ip("192.168.1.5"));
  EXPECT_EQ(refused.outcome, Outcome::refused);
  EXPECT_THAT(refused.message, HasSubstr("dns.allow"));
  EXPECT_EQ(trust.counters().enroll_refused.value(), 1U);
  EXPECT_TRUE(trust.events().after(std::nullopt).events.empty());
}

TEST_F(ClientTrustTest, EnrollIsRateLimitedPerClientAndInAll) {
  ClientTrust trust(config_, clock_, wall_, nullptr);
  EXPECT_EQ(trust.enroll(ip("10.0.0.5")).outcome, Outcome::enrolled);
  auto again = trust.enroll(ip("10.0.0.5"));
  EXPECT_EQ(again.outcome, Outcome::rate_limited);
  EXPECT_EQ(again.retry_after, ClientTrust::kEnrollInterval);
  clock_.advance(ClientTrust::kEnrollInterval);
  EXPECT_EQ(trust.enroll(ip("10.0.0.5")).outcome, Outcome::enrolled);

  clock_.advance(1s);
  int accepted = 0;
  for (int i = 0; i < 30; ++i) {
    auto client = ip(("10.0.1." + std::to_string(i)).c_str());
    if (trust.enroll(client).outcome == Outcome::enrolled) ++accepted;
  }
  EXPECT_EQ(accepted, static_cast<int>(ClientTrust::kEnrollBurst));
  clock_.advance(1s);
  EXPECT_EQ(trust.enroll(ip("10.0.2.1")).outcome, Outcome::enrolled);
  EXPECT_EQ(trust.counters().enroll_rate_limited.value(), 11U);
}

TEST_F(ClientTrustTest, ACacheAloneTellsTheDnsSideThroughItsEvents) {
  ClientTrust trust(config_, clock_, wall_, nullptr);
  auto enrolled = trust.enroll(ip("10.0.0.5"));
  EXPECT_EQ(enrolled.outcome, Outcome::enrolled);
  EXPECT_THAT(enrolled.message, HasSubstr("within a few seconds"));
  auto batch = trust.events().after(std::nullopt);
  ASSERT_EQ(batch.events.size(), 1U);
  EXPECT_EQ(batch.events[0].event.kind, ClientEventKind::enrolled);
}

// The exchange end to end within one process: a real cache answers a real health check with the
// events, and a DNS side's scope applies them.
TEST_F(ClientTrustTest, TheHealthCheckCarriesEventsToAnotherDnsSide) {
  auto loaded = config::load_string("state_dir: " + dir_.string() +
                                        "\nproxy: {listen: [\"127.0.0.1:0\"]}\n"
                                        "dns: {allow: [10.0.0.0/8]}\n",
                                    "t.yaml");
  ASSERT_TRUE(loaded.config);
  config::Config config = *loaded.config;
  testing::TestServerTls server(config, dir_);
  asio::io_context io;
  core::SteadyClock steady;
  core::SystemWallClock wall;
  std::vector<core::Endpoint> nowhere{core::Endpoint{asio::ip::make_address("127.0.0.1"), 1}};
  dns::Forwarder forwarder(io, nowhere, 1s);
  dns::AddressResolver resolver(io, forwarder, steady);
  ClientTrust trust(config, steady, wall, nullptr);
  RegistryCache cache(io, config, server.tls, resolver, {}, &trust);
  cache.start();
  auto endpoint = cache.bound_endpoints().at(0);

  // The DNS side: started before the events happen, as a running one would be.
  health::ClientScope scope(config.dns.intercept, health::EnrolledClients(dir_ / "dns-enrolled"),
                            steady, wall);
  std::vector<health::ClientEventsAnswer> answers;
  auto pem = server.ca.certificate_pem();
  health::TlsCacheProbe probe(
      config.registries.front().host, [pem]() -> std::optional<std::string> { return pem; },
      [&](const health::ClientEventsAnswer& answer, const core::Endpoint& from) {
        answers.push_back(answer);
        scope.apply(answer.cursor.epoch, answer.events, "cache " + from.to_string());
      });
  std::this_thread::sleep_for(5ms);
  trust.untrusted(ip("10.0.0.5"), CertificateAlert::bad_certificate);
  trust.enroll(ip("10.0.0.6"));

  auto check = [&] {
    std::promise<health::CheckResult> result;
    asio::co_spawn(
        io, probe.check(endpoint, 2s),
        [&](const std::exception_ptr&, health::CheckResult r) { result.set_value(std::move(r)); });
    auto future = result.get_future();
    while (future.wait_for(0s) != std::future_status::ready) io.run_one();
    return future.get();
  };
  EXPECT_TRUE(check().ok);
  ASSERT_EQ(answers.size(), 1U);
  EXPECT_EQ(answers[0].events.size(), 2U);
  EXPECT_EQ(answers[0].cursor.epoch, trust.events().epoch());
  EXPECT_EQ(scope.verdict(ip("10.0.0.5")), health::ClientScope::Verdict::bypassed);
  EXPECT_EQ(scope.enrolled_count(), 1U);

  EXPECT_TRUE(check().ok);  // nothing new
  ASSERT_EQ(answers.size(), 2U);
  EXPECT_TRUE(answers[1].events.empty());
  EXPECT_EQ(answers[1].cursor, answers[0].cursor);

  trust.untrusted(ip("10.0.0.7"), CertificateAlert::unknown_ca);
  EXPECT_TRUE(check().ok);
  ASSERT_EQ(answers.size(), 3U);
  ASSERT_EQ(answers[2].events.size(), 1U);
  EXPECT_EQ(answers[2].events[0].event.client, ip("10.0.0.7"));
  EXPECT_EQ(scope.verdict(ip("10.0.0.7")), health::ClientScope::Verdict::bypassed);
  EXPECT_EQ(scope.counters().events_received.value(), 3U);
  EXPECT_TRUE(testing::stop_and_drain(io, cache));
}

}  // namespace
}  // namespace pullthrough::proxy
