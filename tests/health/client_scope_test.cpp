#include "health/client_scope.hpp"

#include <chrono>
#include <filesystem>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/core/fake_clock.hpp"

namespace pullthrough::health {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Verdict = ClientScope::Verdict;

core::IpAddress ip(const char* text) { return *core::parse_ip(text); }

class ClientScopeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("pullthrough-scope-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<ClientScope> make(const config::InterceptConfig& config) {
    std::vector<std::string> problems;
    return std::make_unique<ClientScope>(
        config, EnrolledClients::load(dir_ / "enrolled-clients", problems), clock_, wall_);
  }
  static config::InterceptConfig enrolled_only() {
    config::InterceptConfig c;
    c.all_clients = false;
    c.enrolled = true;
    return c;
  }

  fs::path dir_;
  core::testing::FakeClock clock_;
  core::testing::FakeWallClock wall_;
};

TEST_F(ClientScopeTest, AllInterceptsEveryClient) {
  auto scope = make({});
  EXPECT_EQ(scope->verdict(ip("192.168.1.20")), Verdict::intercept);
  EXPECT_EQ(scope->verdict(ip("fd00::1")), Verdict::intercept);
}

TEST_F(ClientScopeTest, NetworksAndEnrolledClientsAreMatched) {
  config::InterceptConfig c;
  c.all_clients = false;
  c.networks = {*core::Cidr::parse("10.1.0.0/16"), *core::Cidr::parse("fd00:1::/32")};
  auto scope = make(c);
  EXPECT_EQ(scope->verdict(ip("10.1.2.3")), Verdict::intercept);
  EXPECT_EQ(scope->verdict(ip("::ffff:10.1.2.3")), Verdict::intercept);
  EXPECT_EQ(scope->verdict(ip("fd00:1::9")), Verdict::intercept);
  EXPECT_EQ(scope->verdict(ip("10.2.0.1")), Verdict::outside);
  // Enrolling means nothing without `enrolled` in the list: the set is kept all the same.
  EXPECT_TRUE(scope->enroll(ip("10.2.0.1"), "enroll").added);
  EXPECT_EQ(scope->verdict(ip("10.2.0.1")), Verdict::outside);

  c.enrolled = true;
  auto with_enrolled = make(c);
  EXPECT_EQ(with_enrolled->verdict(ip("10.2.0.1")), Verdict::intercept);
  EXPECT_EQ(with_enrolled->verdict(ip("10.1.2.3")), Verdict::intercept);
  EXPECT_EQ(with_enrolled->verdict(ip("10.2.0.2")), Verdict::outside);
}

TEST_F(ClientScopeTest, EnrolledOnlyStartsEmptyAndGrowsOneClientAtATime) {
  auto scope = make(enrolled_only());
  EXPECT_EQ(scope->verdict(ip("10.0.0.5")), Verdict::outside);
  auto result = scope->enroll(ip("10.0.0.5"), "enroll");
  EXPECT_TRUE(result.ok);
  EXPECT_TRUE(result.added);
  EXPECT_EQ(scope->verdict(ip("10.0.0.5")), Verdict::intercept);
  EXPECT_EQ(scope->verdict(ip("10.0.0.6")), Verdict::outside);
  EXPECT_FALSE(scope->enroll(ip("10.0.0.5"), "enroll").added);
  EXPECT_EQ(scope->counters().enrollments.value(), 1U);

  // Another thread sees the change too (each thread keeps its own snapshot).
  Verdict seen = Verdict::outside;
  std::thread([&] { seen = scope->verdict(ip("10.0.0.5")); }).join();
  EXPECT_EQ(seen, Verdict::intercept);

  auto removed = scope->remove(ip("10.0.0.5"));
  EXPECT_TRUE(removed.ok && removed.removed);
  EXPECT_EQ(scope->verdict(ip("10.0.0.5")), Verdict::outside);
  EXPECT_FALSE(scope->remove(ip("10.0.0.5")).removed);
}

TEST_F(ClientScopeTest, TheEnrolledSetSurvivesARestart) {
  make(enrolled_only())->enroll(ip("10.0.0.5"), "enroll");
  auto restarted = make(enrolled_only());
  EXPECT_EQ(restarted->verdict(ip("10.0.0.5")), Verdict::intercept);
  EXPECT_EQ(restarted->enrolled_count(), 1U);
}

TEST_F(ClientScopeTest, AnUntrustingClientIsBypassedUntilItsTimeIsUp) {
  auto scope = make({});
  scope->learn_untrusted(ip("10.0.0.5"), CertificateAlert::bad_certificate, 0ms, "test");
  EXPECT_EQ(scope->verdict(ip("10.0.0.5")), Verdict::bypassed);
  EXPECT_EQ(scope->verdict(ip("10.0.0.6")), Verdict::intercept);
  scope->learn_untrusted(ip("10.0.0.5"), CertificateAlert::unknown_ca, 0ms, "test");
  auto events = scope->bypass_events();
  EXPECT_EQ(events[index_of(CertificateAlert::bad_certificate)], 1U);
  EXPECT_EQ(events[index_of(CertificateAlert::unknown_ca)], 0U);  // the same bypass

  auto status = scope->status();
  ASSERT_EQ(status.bypassed.size(), 1U);
  EXPECT_EQ(status.bypassed[0].client, ip("10.0.0.5"));
  EXPECT_EQ(status.bypassed[0].since, wall_.now());
  EXPECT_EQ(status.bypassed[0].until, wall_.now() + 1h);
  EXPECT_EQ(status.bypassed[0].alert, CertificateAlert::bad_certificate);

  clock_.advance(1h);
  EXPECT_EQ(scope->verdict(ip("10.0.0.5")), Verdict::intercept);
  EXPECT_EQ(scope->bypassed_count(), 0U);
}

TEST_F(ClientScopeTest, EnrollingEndsABypassAtOnce) {
  auto scope = make({});
  scope->learn_untrusted(ip("10.0.0.5"), CertificateAlert::unknown_ca, 0ms, "test");
  ASSERT_EQ(scope->verdict(ip("10.0.0.5")), Verdict::bypassed);
  auto result = scope->enroll(ip("10.0.0.5"), "enroll");
  EXPECT_TRUE(result.bypass_cleared);
  EXPECT_EQ(scope->verdict(ip("10.0.0.5")), Verdict::intercept);
}

TEST_F(ClientScopeTest, ZeroTurnsTheLearnedBypassOff) {
  config::InterceptConfig c;
  c.untrusted_bypass = 0ms;
  auto scope = make(c);
  scope->learn_untrusted(ip("10.0.0.5"), CertificateAlert::unknown_ca, 0ms, "test");
  EXPECT_EQ(scope->verdict(ip("10.0.0.5")), Verdict::intercept);
  EXPECT_EQ(scope->bypass_events()[index_of(CertificateAlert::unknown_ca)], 0U);
}

TEST_F(ClientScopeTest, TheBypassTableIsBounded) {
  config::InterceptConfig c;
  c.max_bypassed = 2;
  auto scope = make(c);
  scope->learn_untrusted(ip("10.0.0.1"), CertificateAlert::unknown_ca, 0ms, "test");
  clock_.advance(1s);
  scope->learn_untrusted(ip("10.0.0.2"), CertificateAlert::unknown_ca, 0ms, "test");
  clock_.advance(1s);
  scope->learn_untrusted(ip("10.0.0.3"), CertificateAlert::unknown_ca, 0ms, "test");
  EXPECT_EQ(scope->bypassed_count(), 2U);
  EXPECT_EQ(scope->verdict(ip("10.0.0.1")), Verdict::intercept);
  EXPECT_EQ(scope->verdict(ip("10.0.0.3")), Verdict::bypassed);
}

TEST_F(ClientScopeTest, EventsFromACacheAreAppliedOnceAndOnlyIfNew) {
  auto scope = make(enrolled_only());
  scope->ignore_epoch("mine");
  clock_.advance(10s);
  std::vector<NumberedEvent> events{
      {1, ClientEvent{ClientEventKind::enrolled, ip("10.0.0.5"), CertificateAlert::unknown_ca, 2s}},
      {2, ClientEvent{ClientEventKind::untrusted, ip("10.0.0.6"),
                      CertificateAlert::certificate_unknown, 1s}},
      // From before this process started: an enrollment `clients rm` may have undone since.
      {3,
       ClientEvent{ClientEventKind::enrolled, ip("10.0.0.7"), CertificateAlert::unknown_ca, 11s}}};
  scope->apply("mine", events, "cache 192.0.2.1:443");
  EXPECT_EQ(scope->enrolled_count(), 0U);
  EXPECT_EQ(scope->counters().events_ignored.value(), 3U);

  scope->apply("theirs", events, "cache 192.0.2.1:443");
  EXPECT_EQ(scope->verdict(ip("10.0.0.5")), Verdict::intercept);
  EXPECT_EQ(scope->verdict(ip("10.0.0.7")), Verdict::outside);
  EXPECT_EQ(scope->counters().events_received.value(), 3U);
  EXPECT_EQ(scope->counters().events_ignored.value(), 4U);
  auto status = scope->status();
  ASSERT_EQ(status.bypassed.size(), 1U);
  EXPECT_EQ(status.bypassed[0].client, ip("10.0.0.6"));
  EXPECT_EQ(status.bypassed[0].since, wall_.now() - 1s);  // when the cache saw it
  EXPECT_EQ(status.enrolled.at(0).via, "enroll");
}

TEST_F(ClientScopeTest, InterceptedClientsAreCountedOverTheLastHour) {
  auto scope = make({});
  scope->note_intercepted(ip("10.0.0.5"));
  scope->note_intercepted(ip("10.0.0.5"));
  scope->note_intercepted(ip("10.0.0.6"));
  EXPECT_EQ(scope->intercepted_count(), 2U);
  clock_.advance(30min);
  scope->note_intercepted(ip("10.0.0.6"));
  clock_.advance(31min);
  EXPECT_EQ(scope->intercepted_count(), 1U);
}

}  // namespace
}  // namespace pullthrough::health
