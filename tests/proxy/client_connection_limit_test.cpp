#include "proxy/client_connection_limit.hpp"

#include <utility>

#include <optional>
#include <vector>

#include <gtest/gtest.h>

namespace pullthrough::proxy {
namespace {

core::IpAddress ip(const char* text) { return *core::parse_ip(text); }

TEST(ClientConnectionLimitTest, AnAddressGetsAtMostItsLimit) {
  ClientConnectionLimit limit(2);
  auto first = limit.admit(ip("192.0.2.1"));
  auto second = limit.admit(ip("192.0.2.1"));
  ASSERT_TRUE(first && second);
  EXPECT_FALSE(limit.admit(ip("192.0.2.1")));
  EXPECT_EQ(limit.open_from(ip("192.0.2.1")), 2U);
}

TEST(ClientConnectionLimitTest, AGivenBackPlaceCanBeTakenAgain) {
  ClientConnectionLimit limit(1);
  auto first = limit.admit(ip("192.0.2.1"));
  ASSERT_TRUE(first);
  EXPECT_FALSE(limit.admit(ip("192.0.2.1")));
  first.reset();
  EXPECT_TRUE(limit.admit(ip("192.0.2.1")));
}

TEST(ClientConnectionLimitTest, AddressesAreCountedApart) {
  ClientConnectionLimit limit(1);
  auto v4 = limit.admit(ip("192.0.2.1"));
  auto other = limit.admit(ip("192.0.2.2"));
  auto v6 = limit.admit(ip("2001:db8::1"));
  EXPECT_TRUE(v4 && other && v6);
  EXPECT_FALSE(limit.admit(ip("2001:db8::1")));
  EXPECT_EQ(limit.clients(), 3U);
}

TEST(ClientConnectionLimitTest, AnIpv4MappedAddressCountsAsItsIpv4Address) {
  ClientConnectionLimit limit(2);
  auto plain = limit.admit(ip("192.0.2.1"));
  auto mapped = limit.admit(ip("::ffff:192.0.2.1"));
  ASSERT_TRUE(plain && mapped);
  EXPECT_FALSE(limit.admit(ip("192.0.2.1")));
  EXPECT_FALSE(limit.admit(ip("::ffff:192.0.2.1")));
  EXPECT_EQ(limit.open_from(ip("192.0.2.1")), 2U);
  EXPECT_EQ(limit.clients(), 1U);
}

// The table holds only addresses with a connection open, so a scan from many addresses leaves
// nothing behind.
TEST(ClientConnectionLimitTest, AnAddressLeavesTheTableWithItsLastConnection) {
  ClientConnectionLimit limit(4);
  std::vector<ClientConnectionLimit::Place> places;
  // Two connections from each of 100 addresses, 192.0.2.0 to 192.0.2.99.
  for (unsigned i = 0; i < 200; ++i) {
    auto address = core::IpAddress(boost::asio::ip::address_v4(0xC0000200U + i % 100));
    auto place = limit.admit(address);
    ASSERT_TRUE(place);
    places.push_back(std::move(*place));
  }
  EXPECT_EQ(limit.clients(), 100U);
  places.resize(100);  // one connection from each address is left
  EXPECT_EQ(limit.clients(), 100U);
  places.clear();
  EXPECT_EQ(limit.clients(), 0U);
  EXPECT_EQ(limit.open_from(ip("192.0.2.1")), 0U);
}

TEST(ClientConnectionLimitTest, AMovedPlaceIsGivenBackOnce) {
  ClientConnectionLimit limit(2);
  auto first = limit.admit(ip("192.0.2.1"));
  auto second = limit.admit(ip("192.0.2.1"));
  ASSERT_TRUE(first && second);
  ClientConnectionLimit::Place moved = std::move(*first);
  *second = std::move(moved);  // gives back second's place, takes over first's
  EXPECT_EQ(limit.open_from(ip("192.0.2.1")), 1U);
  first.reset();
  EXPECT_EQ(limit.open_from(ip("192.0.2.1")), 1U);
  second.reset();
  EXPECT_EQ(limit.open_from(ip("192.0.2.1")), 0U);
  EXPECT_EQ(limit.clients(), 0U);
}

TEST(ClientConnectionLimitTest, ZeroTracksNothingAndAdmitsEveryone) {
  ClientConnectionLimit limit(0);
  std::vector<ClientConnectionLimit::Place> places;
  for (int i = 0; i < 1000; ++i) {
    auto place = limit.admit(ip("192.0.2.1"));
    ASSERT_TRUE(place);
    places.push_back(std::move(*place));
  }
  EXPECT_EQ(limit.clients(), 0U);
}

}  // namespace
}  // namespace pullthrough::proxy
