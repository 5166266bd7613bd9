#include "core/net.hpp"

#include <gtest/gtest.h>

namespace pullthrough::core {
namespace {

IpAddress ip(const char* text) { return *parse_ip(text); }

TEST(EndpointTest, ParsesIpv4AndBracketedIpv6) {
  auto v4 = parse_endpoint("192.0.2.1:53");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->address, ip("192.0.2.1"));
  EXPECT_EQ(v4->port, 53);
  auto v6 = parse_endpoint("[::]:443");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->address.is_v6());
  EXPECT_EQ(v6->port, 443);
}

TEST(EndpointTest, PortRequiredWithoutDefault) {
  EXPECT_FALSE(parse_endpoint("192.0.2.1"));
  EXPECT_FALSE(parse_endpoint("[::1]"));
  EXPECT_FALSE(parse_endpoint("::1"));
}

TEST(EndpointTest, DefaultPortFillsBareAddresses) {
  EXPECT_EQ(parse_endpoint("192.0.2.1", 53)->port, 53);
  EXPECT_EQ(parse_endpoint("2001:db8::1", 53)->address, ip("2001:db8::1"));
  EXPECT_EQ(parse_endpoint("[2001:db8::1]", 53)->port, 53);
  EXPECT_EQ(parse_endpoint("192.0.2.1:5353", 53)->port, 5353);
}

TEST(EndpointTest, RejectsMalformed) {
  for (const char* text :
       {"", ":53", "192.0.2.1:", "192.0.2.1:65536", "192.0.2.1:-1", "192.0.2.1:5a", "host:53",
        "[192.0.2.1]:53", "[::1]53", "[::1", "[fe80::1%eth0]:53", "1.2.3.4.5:53"}) {
    EXPECT_FALSE(parse_endpoint(text)) << text;
  }
}

TEST(EndpointTest, FormatsWithBracketsForIpv6) {
  EXPECT_EQ(parse_endpoint("[::1]:53")->to_string(), "[::1]:53");
  EXPECT_EQ(parse_endpoint("127.0.0.1:80")->to_string(), "127.0.0.1:80");
}

TEST(CidrTest, ContainsByPrefix) {
  auto net = Cidr::parse("10.0.0.0/8");
  ASSERT_TRUE(net);
  EXPECT_TRUE(net->contains(ip("10.255.1.2")));
  EXPECT_FALSE(net->contains(ip("11.0.0.1")));
  auto odd = Cidr::parse("172.16.0.0/12");
  EXPECT_TRUE(odd->contains(ip("172.31.255.255")));
  EXPECT_FALSE(odd->contains(ip("172.32.0.0")));
  auto v6 = Cidr::parse("fd00::/8");
  EXPECT_TRUE(v6->contains(ip("fd12::1")));
  EXPECT_FALSE(v6->contains(ip("fe80::1")));
}

TEST(CidrTest, BareAddressIsSingleHost) {
  auto one = Cidr::parse("192.0.2.7");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->prefix_length(), 32U);
  EXPECT_TRUE(one->contains(ip("192.0.2.7")));
  EXPECT_FALSE(one->contains(ip("192.0.2.8")));
}

TEST(CidrTest, ZeroPrefixMatchesWholeFamilyOnly) {
  auto all4 = Cidr::parse("0.0.0.0/0");
  EXPECT_TRUE(all4->contains(ip("203.0.113.9")));
  EXPECT_FALSE(all4->contains(ip("2001:db8::1")));
}

TEST(CidrTest, MappedIpv4MatchesIpv4Network) {
  EXPECT_TRUE(Cidr::parse("10.0.0.0/8")->contains(ip("::ffff:10.1.2.3")));
}

TEST(CidrTest, RejectsHostBitsAndBadPrefixes) {
  for (const char* text : {"10.0.0.1/8", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x",
                           "10.0.0.0/-1", "/8", "fd00::1/8", "10.0.0.0/0008"}) {
    EXPECT_FALSE(Cidr::parse(text)) << text;
  }
}

TEST(CidrTest, PrivateNetworksCoverEachRange) {
  for (const char* text : {"127.0.0.1", "10.1.1.1", "172.16.0.1", "192.168.1.1", "169.254.1.1",
                           "::1", "fd00::1", "fe80::1", "::ffff:192.168.0.1"}) {
    EXPECT_TRUE(contains_any(private_networks(), ip(text))) << text;
  }
  for (const char* text : {"8.8.8.8", "172.32.0.1", "2001:db8::1", "192.0.2.1"}) {
    EXPECT_FALSE(contains_any(private_networks(), ip(text))) << text;
  }
}

TEST(InterfaceAddressesTest, IncludesLoopback) {
  auto addresses = interface_addresses();
  EXPECT_NE(std::find(addresses.begin(), addresses.end(), ip("127.0.0.1")), addresses.end());
  for (const auto& a : addresses) {
    EXPECT_FALSE(a.is_v6() && a.to_v6().is_link_local()) << a.to_string();
  }
}

}  // namespace
}  // namespace pullthrough::core

namespace pullthrough::core {
namespace {

TEST(Ipv6OnlyTest, WildcardIsDualStackUnlessIpv4SharesThePort) {
  auto v6 = *parse_endpoint("[::]:53");
  EXPECT_FALSE(ipv6_only(v6, {v6}));
  EXPECT_TRUE(ipv6_only(v6, {*parse_endpoint("0.0.0.0:53"), v6}));
  EXPECT_FALSE(ipv6_only(v6, {*parse_endpoint("0.0.0.0:5353"), v6}));
}

}  // namespace
}  // namespace pullthrough::core
