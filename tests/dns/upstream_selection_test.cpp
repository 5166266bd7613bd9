#include "dns/upstream_selection.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace pullthrough::dns {
namespace {

using ::testing::HasSubstr;

core::IpAddress ip(const char* text) { return *core::parse_ip(text); }
core::Endpoint ep(const char* text) { return *core::parse_endpoint(text); }

TEST(ResolvConfTest, TakesNameserverLinesInOrder) {
  auto servers = parse_resolv_conf(
      "# comment\n"
      "search lan\n"
      "nameserver 192.0.2.53\n"
      "  nameserver\t2001:db8::53  # trailing\n"
      "nameserver fe80::1%eth0\n"
      "nameserver not-an-address\n"
      "nameserver\n"
      "options edns0\n"
      "nameserver 192.0.2.54");
  ASSERT_EQ(servers.size(), 3U);
  EXPECT_EQ(servers[0], ip("192.0.2.53"));
  EXPECT_EQ(servers[1], ip("2001:db8::53"));
  EXPECT_EQ(servers[2], ip("192.0.2.54"));
}

TEST(OwnListenerTest, ExactAddressAndPort) {
  std::vector<core::Endpoint> listen{ep("192.0.2.1:53")};
  EXPECT_TRUE(reaches_own_listener(ep("192.0.2.1:53"), listen, {}));
  EXPECT_FALSE(reaches_own_listener(ep("192.0.2.1:5353"), listen, {}));
  EXPECT_FALSE(reaches_own_listener(ep("192.0.2.2:53"), listen, {}));
}

TEST(OwnListenerTest, WildcardCatchesLoopbackAndHostAddresses) {
  std::vector<core::Endpoint> listen{ep("0.0.0.0:53")};
  std::vector<core::IpAddress> host{ip("127.0.0.1"), ip("192.0.2.9")};
  EXPECT_TRUE(reaches_own_listener(ep("127.0.0.1:53"), listen, host));
  EXPECT_TRUE(reaches_own_listener(ep("127.0.0.53:53"), listen, host));
  EXPECT_TRUE(reaches_own_listener(ep("192.0.2.9:53"), listen, host));
  EXPECT_FALSE(reaches_own_listener(ep("192.0.2.10:53"), listen, host));
  // An IPv4 wildcard does not receive IPv6.
  EXPECT_FALSE(reaches_own_listener(ep("[::1]:53"), listen, host));
}

TEST(OwnListenerTest, Ipv6WildcardIsDualStack) {
  std::vector<core::Endpoint> listen{ep("[::]:53")};
  std::vector<core::IpAddress> host{ip("192.0.2.9")};
  EXPECT_TRUE(reaches_own_listener(ep("[::1]:53"), listen, host));
  EXPECT_TRUE(reaches_own_listener(ep("192.0.2.9:53"), listen, host));
  EXPECT_TRUE(reaches_own_listener(ep("[::ffff:192.0.2.9]:53"), listen, host));
}

TEST(SelectUpstreamsTest, SystemDropsOurOwnAddresses) {
  config::DnsConfig dns;
  dns.listen = {ep("0.0.0.0:53"), ep("[::]:53")};
  dns.system_upstreams = true;
  auto selection =
      select_upstreams(dns, "nameserver 127.0.0.1\nnameserver 192.0.2.53\nnameserver 192.0.2.9\n",
                       {ip("127.0.0.1"), ip("192.0.2.9")}, {ip("192.0.2.9")});
  ASSERT_EQ(selection.upstreams.size(), 1U);
  EXPECT_EQ(selection.upstreams[0], ep("192.0.2.53:53"));
  ASSERT_EQ(selection.dropped.size(), 2U);
  EXPECT_THAT(selection.dropped[0], HasSubstr("127.0.0.1:53 (system): our own DNS listener"));
  EXPECT_THAT(selection.dropped[1], HasSubstr("an appliance address"));
  EXPECT_TRUE(selection.errors.empty());
}

TEST(SelectUpstreamsTest, SystemResolverOnAnotherPortIsNotUs) {
  config::DnsConfig dns;
  dns.listen = {ep("127.0.0.1:5353")};
  auto selection = select_upstreams(dns, "nameserver 127.0.0.1\n", {ip("127.0.0.1")}, {});
  ASSERT_EQ(selection.upstreams.size(), 1U);
  EXPECT_EQ(selection.upstreams[0], ep("127.0.0.1:53"));
}

TEST(SelectUpstreamsTest, ExplicitSelfIsAnError) {
  config::DnsConfig dns;
  dns.listen = {ep("0.0.0.0:53")};
  dns.system_upstreams = false;
  dns.upstreams = {ep("127.0.0.1:53"), ep("192.0.2.53:53"), ep("192.0.2.53:53")};
  auto selection = select_upstreams(dns, "nameserver 192.0.2.99\n", {ip("127.0.0.1")}, {});
  ASSERT_EQ(selection.errors.size(), 1U);
  EXPECT_THAT(selection.errors[0], HasSubstr("127.0.0.1:53 is this appliance's own DNS listener"));
  // Explicit only: resolv.conf is not consulted; duplicates collapse.
  ASSERT_EQ(selection.upstreams.size(), 1U);
  EXPECT_EQ(selection.upstreams[0], ep("192.0.2.53:53"));
}

TEST(SelectUpstreamsTest, ExplicitBeforeSystem) {
  config::DnsConfig dns;
  dns.listen = {ep("127.0.0.1:5300")};
  dns.system_upstreams = true;
  dns.upstreams = {ep("192.0.2.1:53")};
  auto selection = select_upstreams(dns, "nameserver 192.0.2.2\nnameserver 192.0.2.1\n", {}, {});
  ASSERT_EQ(selection.upstreams.size(), 2U);
  EXPECT_EQ(selection.upstreams[0], ep("192.0.2.1:53"));
  EXPECT_EQ(selection.upstreams[1], ep("192.0.2.2:53"));
}

}  // namespace
}  // namespace pullthrough::dns
