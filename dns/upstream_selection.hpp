// Choosing the resolvers that forwarded queries go to, so that the appliance never forwards to
// itself: a nameserver line in /etc/resolv.conf that points back at this host's own listener would
// turn every forwarded query into a loop.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "core/net.hpp"

namespace pullthrough::dns {

// The nameserver addresses of a resolv.conf(5) text, in order. Lines that are not
// "nameserver ADDRESS" are ignored, as are addresses the appliance cannot use (IPv6 with a scope).
std::vector<core::IpAddress> parse_resolv_conf(std::string_view text);

// True when a query sent to `upstream` would arrive at one of our own DNS listeners: the same
// address and port, or a wildcard listener on that port and `upstream` is one of this host's
// addresses (loopback included).
bool reaches_own_listener(const core::Endpoint& upstream, const std::vector<core::Endpoint>& listen,
                          const std::vector<core::IpAddress>& host_addresses);

struct UpstreamSelection {
  std::vector<core::Endpoint> upstreams;
  // Why each dropped resolver was dropped, for the log.
  std::vector<std::string> dropped;
  // Explicitly configured upstreams that point at ourselves: a configuration error.
  std::vector<std::string> errors;
};

// dns.upstreams resolved: "system" expands to resolv_conf's nameservers (port 53) minus ours;
// explicit entries are kept in order. Duplicates are removed.
UpstreamSelection select_upstreams(const config::DnsConfig& dns, std::string_view resolv_conf,
                                   const std::vector<core::IpAddress>& host_addresses,
                                   const std::vector<core::IpAddress>& appliance_addresses);

}  // namespace pullthrough::dns
