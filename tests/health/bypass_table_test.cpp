#include "health/bypass_table.hpp"

#include <chrono>

#include <gtest/gtest.h>

#include "tests/core/fake_clock.hpp"

namespace pullthrough::health {
namespace {

using namespace std::chrono_literals;

core::IpAddress ip(const char* text) { return *core::parse_ip(text); }

class BypassTableTest : public ::testing::Test {
 protected:
  core::testing::FakeClock clock_;
};

TEST_F(BypassTableTest, AClientIsBypassedForItsLengthThenNotAnyMore) {
  BypassTable table(8);
  auto now = clock_.now();
  EXPECT_TRUE(table.learn(ip("10.0.0.5"), CertificateAlert::bad_certificate, now, 1h, now));
  EXPECT_TRUE(table.bypassed(ip("10.0.0.5"), now));
  EXPECT_FALSE(table.bypassed(ip("10.0.0.6"), now));
  clock_.advance(1h - 1s);
  EXPECT_TRUE(table.bypassed(ip("10.0.0.5"), clock_.now()));
  clock_.advance(1s);
  EXPECT_FALSE(table.bypassed(ip("10.0.0.5"), clock_.now()));
  EXPECT_TRUE(table.active(clock_.now()).empty());
}

TEST_F(BypassTableTest, FailingAgainDoesNotExtendABypassButStartsANewOneAfterIt) {
  BypassTable table(8);
  auto start = clock_.now();
  ASSERT_TRUE(table.learn(ip("10.0.0.5"), CertificateAlert::unknown_ca, start, 1h, start));
  clock_.advance(30min);
  EXPECT_FALSE(table.learn(ip("10.0.0.5"), CertificateAlert::bad_certificate, clock_.now(), 1h,
                           clock_.now()));
  auto active = table.active(clock_.now());
  ASSERT_EQ(active.size(), 1U);
  EXPECT_EQ(active[0].since, start);
  EXPECT_EQ(active[0].until, start + 1h);
  EXPECT_EQ(active[0].alert, CertificateAlert::unknown_ca);
  clock_.advance(31min);
  EXPECT_TRUE(table.learn(ip("10.0.0.5"), CertificateAlert::bad_certificate, clock_.now(), 1h,
                          clock_.now()));
  active = table.active(clock_.now());
  ASSERT_EQ(active.size(), 1U);
  EXPECT_EQ(active[0].alert, CertificateAlert::bad_certificate);
}

TEST_F(BypassTableTest, AtCapacityTheOldestGoesFirst) {
  BypassTable table(3);
  auto t0 = clock_.now();
  table.learn(ip("10.0.0.1"), CertificateAlert::unknown_ca, t0, 1h, t0);
  table.learn(ip("10.0.0.2"), CertificateAlert::unknown_ca, t0 + 1s, 1h, t0 + 1s);
  table.learn(ip("10.0.0.3"), CertificateAlert::unknown_ca, t0 + 2s, 1h, t0 + 2s);
  EXPECT_TRUE(table.learn(ip("10.0.0.4"), CertificateAlert::unknown_ca, t0 + 3s, 1h, t0 + 3s));
  EXPECT_EQ(table.size(), 3U);
  EXPECT_FALSE(table.bypassed(ip("10.0.0.1"), t0 + 3s));
  for (const char* kept : {"10.0.0.2", "10.0.0.3", "10.0.0.4"}) {
    EXPECT_TRUE(table.bypassed(ip(kept), t0 + 3s)) << kept;
  }
  // Expired entries make room before any live one is pushed out.
  table.clear(ip("10.0.0.2"));
  table.learn(ip("10.0.0.2"), CertificateAlert::unknown_ca, t0 + 4s, 10s, t0 + 4s);
  auto later = t0 + 20s;
  EXPECT_TRUE(table.learn(ip("10.0.0.9"), CertificateAlert::unknown_ca, later, 1h, later));
  EXPECT_TRUE(table.bypassed(ip("10.0.0.3"), later));
  EXPECT_TRUE(table.bypassed(ip("10.0.0.4"), later));
  EXPECT_TRUE(table.bypassed(ip("10.0.0.9"), later));
}

TEST_F(BypassTableTest, ClearEndsABypassAndMappedAddressesAreTheirIpv4) {
  BypassTable table(8);
  auto now = clock_.now();
  table.learn(ip("::ffff:10.0.0.5"), CertificateAlert::certificate_unknown, now, 1h, now);
  EXPECT_TRUE(table.bypassed(ip("10.0.0.5"), now));
  EXPECT_EQ(table.active(now).at(0).client, ip("10.0.0.5"));
  EXPECT_TRUE(table.clear(ip("10.0.0.5")));
  EXPECT_FALSE(table.bypassed(ip("::ffff:10.0.0.5"), now));
  EXPECT_FALSE(table.clear(ip("10.0.0.5")));
}

TEST_F(BypassTableTest, AnEventOlderThanTheBypassStartsNothing) {
  BypassTable table(8);
  auto now = clock_.now();
  EXPECT_FALSE(table.learn(ip("10.0.0.5"), CertificateAlert::unknown_ca, now - 2h, 1h, now));
  EXPECT_EQ(table.size(), 0U);
  // An event from 10 minutes ago bypasses for the rest of its hour.
  EXPECT_TRUE(table.learn(ip("10.0.0.5"), CertificateAlert::unknown_ca, now - 10min, 1h, now));
  EXPECT_EQ(table.active(now).at(0).until, now + 50min);
}

}  // namespace
}  // namespace pullthrough::health
