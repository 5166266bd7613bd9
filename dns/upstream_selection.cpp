#include "dns/upstream_selection.hpp"

#include <algorithm>
#include <sstream>

namespace pullthrough::dns {
namespace {

bool contains(const std::vector<core::IpAddress>& list, const core::IpAddress& address) {
  auto plain = core::unmapped(address);
  return std::any_of(list.begin(), list.end(),
                     [&](const core::IpAddress& a) { return core::unmapped(a) == plain; });
}

}  // namespace

std::vector<core::IpAddress> parse_resolv_conf(std::string_view text) {
  std::vector<core::IpAddress> out;
  std::istringstream lines{std::string(text)};
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string keyword;
    std::string value;
    if (!(words >> keyword >> value) || keyword != "nameserver") continue;
    if (auto address = core::parse_ip(value)) out.push_back(*address);
  }
  return out;
}

bool reaches_own_listener(const core::Endpoint& upstream, const std::vector<core::Endpoint>& listen,
                          const std::vector<core::IpAddress>& host_addresses) {
  auto target = core::unmapped(upstream.address);
  for (const auto& own : listen) {
    if (own.port != upstream.port) continue;
    auto bound = core::unmapped(own.address);
    if (bound == target) return true;
    // A wildcard listener receives traffic for every local address. An IPv6 wildcard socket
    // (dual-stack by default on Linux) receives IPv4 too.
    if (bound.is_unspecified() && (bound.is_v6() || target.is_v4())) {
      if (target.is_loopback() || contains(host_addresses, target)) return true;
    }
  }
  return false;
}

UpstreamSelection select_upstreams(const config::DnsConfig& dns, std::string_view resolv_conf,
                                   const std::vector<core::IpAddress>& host_addresses,
                                   const std::vector<core::IpAddress>& appliance_addresses) {
  UpstreamSelection out;
  auto add = [&](const core::Endpoint& endpoint) {
    if (std::find(out.upstreams.begin(), out.upstreams.end(), endpoint) == out.upstreams.end()) {
      out.upstreams.push_back(endpoint);
    }
  };
  for (const auto& endpoint : dns.upstreams) {
    if (reaches_own_listener(endpoint, dns.listen, host_addresses)) {
      out.errors.push_back("dns.upstreams: " + endpoint.to_string() +
                           " is this appliance's own DNS listener; forwarding there would loop");
      continue;
    }
    add(endpoint);
  }
  if (dns.system_upstreams) {
    for (const auto& address : parse_resolv_conf(resolv_conf)) {
      core::Endpoint endpoint{address, 53};
      if (contains(appliance_addresses, address)) {
        out.dropped.push_back(endpoint.to_string() + " (system): an appliance address");
      } else if (reaches_own_listener(endpoint, dns.listen, host_addresses)) {
        out.dropped.push_back(endpoint.to_string() + " (system): our own DNS listener");
      } else {
        add(endpoint);
      }
    }
  }
  return out;
}

}  // namespace pullthrough::dns
