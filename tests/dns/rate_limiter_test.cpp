#include "dns/rate_limiter.hpp"

#include <gtest/gtest.h>

#include "tests/core/fake_clock.hpp"

namespace pullthrough::dns {
namespace {

core::IpAddress ip(const char* text) { return *core::parse_ip(text); }

int allowed_of(RateLimiter& limiter, const core::IpAddress& client, int attempts) {
  int allowed = 0;
  for (int i = 0; i < attempts; ++i) allowed += limiter.allow(client) ? 1 : 0;
  return allowed;
}

TEST(RateLimiterTest, BurstOfOneSecondThenRefill) {
  core::testing::FakeClock clock;
  RateLimiter limiter(100, clock);
  EXPECT_EQ(allowed_of(limiter, ip("192.0.2.1"), 150), 100);
  clock.advance(std::chrono::milliseconds(100));
  EXPECT_EQ(allowed_of(limiter, ip("192.0.2.1"), 50), 10);
  clock.advance(std::chrono::seconds(5));
  EXPECT_EQ(allowed_of(limiter, ip("192.0.2.1"), 150), 100);  // capped at one second's worth
}

TEST(RateLimiterTest, ClientsAreIndependent) {
  core::testing::FakeClock clock;
  RateLimiter limiter(10, clock);
  EXPECT_EQ(allowed_of(limiter, ip("192.0.2.1"), 20), 10);
  EXPECT_EQ(allowed_of(limiter, ip("192.0.2.2"), 20), 10);
  EXPECT_EQ(allowed_of(limiter, ip("2001:db8::1"), 20), 10);
}

TEST(RateLimiterTest, MappedIpv4IsTheSameClient) {
  core::testing::FakeClock clock;
  RateLimiter limiter(10, clock);
  EXPECT_EQ(allowed_of(limiter, ip("192.0.2.1"), 6), 6);
  EXPECT_EQ(allowed_of(limiter, ip("::ffff:192.0.2.1"), 10), 4);
}

TEST(RateLimiterTest, ZeroIsOff) {
  core::testing::FakeClock clock;
  RateLimiter limiter(0, clock);
  EXPECT_EQ(allowed_of(limiter, ip("192.0.2.1"), 10000), 10000);
  EXPECT_EQ(limiter.tracked_clients(), 0U);
}

TEST(RateLimiterTest, MemoryStaysBounded) {
  core::testing::FakeClock clock;
  RateLimiter limiter(10, clock, 160);
  for (std::uint32_t i = 0; i < 5000; ++i) {
    limiter.allow(boost::asio::ip::address_v4(0x0A000000 + i));
    if (i % 100 == 0) clock.advance(std::chrono::milliseconds(300));
  }
  EXPECT_LE(limiter.tracked_clients(), 160U);
}

}  // namespace
}  // namespace pullthrough::dns
