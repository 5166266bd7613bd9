#include "core/net.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <functional>
#include <memory>

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

namespace pullthrough::core {
namespace {

std::optional<std::uint16_t> parse_port(std::string_view text) {
  unsigned value = 0;
  if (text.empty() || text.size() > 5) return std::nullopt;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

bool all_digits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Address bytes in network order, 4 or 16 of them.
std::vector<unsigned char> bytes_of(const IpAddress& address) {
  if (address.is_v4()) {
    auto b = address.to_v4().to_bytes();
    return {b.begin(), b.end()};
  }
  auto b = address.to_v6().to_bytes();
  return {b.begin(), b.end()};
}

bool prefix_matches(const std::vector<unsigned char>& a, const std::vector<unsigned char>& b,
                    unsigned prefix_length) {
  unsigned full = prefix_length / 8;
  unsigned rest = prefix_length % 8;
  if (!std::equal(a.begin(), a.begin() + full, b.begin())) return false;
  if (rest == 0) return true;
  auto mask = static_cast<unsigned char>(0xFF << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

}  // namespace

IpAddress unmapped(const IpAddress& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6());
  }
  return address;
}

std::size_t IpAddressHash::operator()(const IpAddress& address) const {
  if (address.is_v4()) return std::hash<std::uint32_t>{}(address.to_v4().to_uint());
  // FNV-1a over the 16 bytes.
  std::size_t h = 1469598103934665603ULL;
  for (auto b : address.to_v6().to_bytes()) h = (h ^ b) * 1099511628211ULL;
  return h;
}

std::optional<IpAddress> parse_ip(std::string_view text) {
  // make_address accepts scoped IPv6 ("fe80::1%eth0"); configuration has no use for scopes.
  if (text.empty() || text.find('%') != std::string_view::npos) return std::nullopt;
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(std::string(text), ec);
  if (ec) return std::nullopt;
  return address;
}

std::string Endpoint::to_string() const {
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) about "[" + std::string.
  std::string out;
  if (address.is_v6()) out += '[';
  out += address.to_string();
  if (address.is_v6()) out += ']';
  out += ':';
  out += std::to_string(port);
  return out;
}

std::optional<Endpoint> parse_endpoint(std::string_view text,
                                       std::optional<std::uint16_t> default_port) {
  std::string_view host = text;
  std::optional<std::uint16_t> port = default_port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port = parse_port(rest.substr(1));
      if (!port) return std::nullopt;
    }
    auto address = parse_ip(host);
    if (!address || !address->is_v6() || !port) return std::nullopt;
    return Endpoint{*address, *port};
  }
  auto colon = text.find(':');
  if (colon != std::string_view::npos && text.find(':', colon + 1) == std::string_view::npos) {
    // Exactly one colon: IPv4 with a port.
    host = text.substr(0, colon);
    port = parse_port(text.substr(colon + 1));
    if (!port) return std::nullopt;
    auto address = parse_ip(host);
    if (!address || !address->is_v4()) return std::nullopt;
    return Endpoint{*address, *port};
  }
  // No colon (bare IPv4) or several (bare IPv6): only valid with a default port.
  auto address = parse_ip(host);
  if (!address || !port) return std::nullopt;
  return Endpoint{*address, *port};
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
  auto slash = text.find('/');
  auto address = parse_ip(text.substr(0, slash));
  if (!address) return std::nullopt;
  unsigned max_length = address->is_v4() ? 32 : 128;
  unsigned length = max_length;
  if (slash != std::string_view::npos) {
    auto digits = text.substr(slash + 1);
    if (!all_digits(digits) || digits.size() > 3) return std::nullopt;
    std::from_chars(digits.data(), digits.data() + digits.size(), length);
    if (length > max_length) return std::nullopt;
  }
  auto bytes = bytes_of(*address);
  auto zero = std::vector<unsigned char>(bytes.size(), 0);
  // Host bits set: the network with those bits cleared would differ from what was written.
  for (unsigned bit = length; bit < max_length; ++bit) {
    if (bytes[bit / 8] & (0x80 >> (bit % 8))) return std::nullopt;
  }
  return Cidr(*address, length);
}

bool Cidr::contains(const IpAddress& address) const {
  auto plain = unmapped(address);
  if (plain.is_v4() != network_.is_v4()) return false;
  return prefix_matches(bytes_of(plain), bytes_of(network_), prefix_length_);
}

std::string Cidr::to_string() const {
  return network_.to_string() + "/" + std::to_string(prefix_length_);
}

bool contains_any(const std::vector<Cidr>& networks, const IpAddress& address) {
  return std::any_of(networks.begin(), networks.end(),
                     [&](const Cidr& network) { return network.contains(address); });
}

bool ipv6_only(const Endpoint& endpoint, const std::vector<Endpoint>& listen) {
  return std::any_of(listen.begin(), listen.end(), [&](const Endpoint& e) {
    return e.address.is_v4() && e.port == endpoint.port;
  });
}

const std::vector<Cidr>& private_networks() {
  static const std::vector<Cidr> kNetworks = [] {
    std::vector<Cidr> out;
    for (const char* text : {"127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                             "169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10"}) {
      out.push_back(*Cidr::parse(text));
    }
    return out;
  }();
  return kNetworks;
}

std::vector<IpAddress> interface_addresses() {
  ifaddrs* raw = nullptr;
  if (getifaddrs(&raw) != 0) return {};
  std::unique_ptr<ifaddrs, decltype(&freeifaddrs)> list(raw, &freeifaddrs);
  std::vector<IpAddress> out;
  for (auto* it = list.get(); it != nullptr; it = it->ifa_next) {
    if (it->ifa_addr == nullptr || (it->ifa_flags & IFF_UP) == 0) continue;
    if (it->ifa_addr->sa_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(it->ifa_addr);
      boost::asio::ip::address_v4::bytes_type bytes;
      std::memcpy(bytes.data(), &sin->sin_addr, bytes.size());
      out.emplace_back(boost::asio::ip::address_v4(bytes));
    } else if (it->ifa_addr->sa_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(it->ifa_addr);
      boost::asio::ip::address_v6::bytes_type bytes;
      std::memcpy(bytes.data(), &sin6->sin6_addr, bytes.size());
      boost::asio::ip::address_v6 v6(bytes);
      if (v6.is_link_local()) continue;
      out.emplace_back(v6);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace pullthrough::core
