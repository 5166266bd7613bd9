// URLs as the upstream client meets them: the origin a connection is made to (the unit of pooling,
// and of "may this request carry the registry's credentials"), and the Location an upstream
// redirects to. Location is text from the network, so parsing refuses anything it cannot carry
// safely into a request line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pullthrough::proxy {

// scheme://host:port of a connection: the unit of pooling and of "is this the registry itself".
struct Origin {
  std::string scheme;  // "https" or "http"
  std::string host;    // lower case; an IPv6 literal without brackets
  std::uint16_t port = 443;

  bool tls() const { return scheme == "https"; }
  bool operator==(const Origin&) const = default;

  std::string host_for_url() const {
    return host.find(':') != std::string::npos ? "[" + host + "]" : host;
  }
  std::uint16_t default_port() const { return tls() ? 443 : 80; }
  // RFC 9110 7.2: the port may be left out of Host when it is the scheme's default.
  std::string host_field() const {
    return port == default_port() ? host_for_url() : host_for_url() + ":" + std::to_string(port);
  }
  std::string key() const { return scheme + "://" + host_for_url() + ":" + std::to_string(port); }
  std::string url() const { return scheme + "://" + host_field(); }
};

struct Location {
  Origin origin;
  std::string target;  // origin form
};

// The path and query of a URL, for logs: signed redirect URLs carry their credentials in the
// query, so logs show the path only.
std::string_view without_query(std::string_view target);

// "http(s)://host[:port][/path][?query][#fragment]". Empty for another scheme, userinfo, a bad
// port, a host with characters outside [A-Za-z0-9._-] (or a bracketed IPv6 literal), or any
// control character, space or non-ASCII byte.
std::optional<Location> parse_absolute_url(std::string_view url);

// RFC 9110 10.2.2: a Location value (absolute, scheme-relative, absolute-path, query-only or
// relative) resolved against the request it answered (RFC 3986 section 5; dot segments are passed
// on as they are, for the target host to interpret). Empty when it cannot be used.
std::optional<Location> resolve_location(const Origin& base, std::string_view base_target,
                                         std::string_view location);

}  // namespace pullthrough::proxy
