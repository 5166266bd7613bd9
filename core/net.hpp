// IP addresses, host:port endpoints and CIDR networks: the value types that configuration, the
// DNS responder and the proxy share. Parsing never throws; it returns std::nullopt on bad input.
#pragma once

#include <utility>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>

namespace pullthrough::core {

using IpAddress = boost::asio::ip::address;

// An IPv4 client seen on a dual-stack IPv6 socket appears as ::ffff:a.b.c.d. Policy decisions
// (allow lists, "is this one of our addresses") are made on the plain IPv4 form.
IpAddress unmapped(const IpAddress& address);

std::optional<IpAddress> parse_ip(std::string_view text);

// For per-client tables (unordered_map keys): Boost 1.74 has no std::hash for addresses.
struct IpAddressHash {
  std::size_t operator()(const IpAddress& address) const;
};

struct Endpoint {
  IpAddress address;
  std::uint16_t port = 0;

  bool operator==(const Endpoint&) const = default;
  // "192.0.2.1:53" or "[2001:db8::1]:53".
  std::string to_string() const;
};

// Accepts "ip:port" and "[ipv6]:port". When default_port is set, a bare "ip" or "[ipv6]" (and a
// bare IPv6 address without brackets) takes that port; otherwise the port is required.
std::optional<Endpoint> parse_endpoint(std::string_view text,
                                       std::optional<std::uint16_t> default_port = std::nullopt);

class Cidr {
 public:
  // "10.0.0.0/8", "fd00::/8", or a bare address (a /32 or /128). Host bits must be zero so that a
  // typo such as "10.0.0.1/8" is caught instead of silently widening or narrowing a rule.
  static std::optional<Cidr> parse(std::string_view text);

  bool contains(const IpAddress& address) const;
  const IpAddress& network() const { return network_; }
  unsigned prefix_length() const { return prefix_length_; }
  std::string to_string() const;
  bool operator==(const Cidr&) const = default;

 private:
  Cidr(IpAddress network, unsigned prefix_length)
      : network_(std::move(network)), prefix_length_(prefix_length) {}

  IpAddress network_;
  unsigned prefix_length_ = 0;
};

bool contains_any(const std::vector<Cidr>& networks, const IpAddress& address);

// Whether a socket bound to `endpoint` should be IPv6-only: an IPv6 wildcard ("[::]:80") is
// dual-stack unless `listen` also has an IPv4 address on that port, which would then fail to bind.
bool ipv6_only(const Endpoint& endpoint, const std::vector<Endpoint>& listen);

// What "private" means in allow lists: loopback, RFC 1918, RFC 4193 unique-local, and link-local,
// for both address families.
const std::vector<Cidr>& private_networks();

// The addresses configured on this host's interfaces (getifaddrs), loopback included. Interfaces
// that are down are skipped. IPv6 link-local addresses are skipped because they are unusable
// without a scope and never handed out in DNS answers.
std::vector<IpAddress> interface_addresses();

}  // namespace pullthrough::core
