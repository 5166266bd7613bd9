#include "proxy/upstream/url.hpp"

#include <algorithm>
#include <cctype>

#include "core/net.hpp"
#include "core/text.hpp"

namespace pullthrough::proxy {
namespace {

// Anything a request line cannot carry as is: control characters (a CR LF would inject header
// lines), spaces, and bytes outside ASCII, which a well-formed URL has percent-encoded.
bool is_clean_url_text(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f;
  });
}

bool is_host_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.' || c == '_';
}

}  // namespace

std::string_view without_query(std::string_view target) {
  return target.substr(0, target.find('?'));
}

std::optional<Location> parse_absolute_url(std::string_view url) {
  if (!is_clean_url_text(url)) return std::nullopt;
  auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::nullopt;
  Location out;
  out.origin.scheme = core::ascii_lower(url.substr(0, scheme_end));
  if (out.origin.scheme != "https" && out.origin.scheme != "http") return std::nullopt;
  url.remove_prefix(scheme_end + 3);
  url = url.substr(0, url.find('#'));
  auto authority_end = url.find_first_of("/?");
  std::string_view authority = url.substr(0, authority_end);
  std::string_view rest = authority_end == std::string_view::npos ? "" : url.substr(authority_end);
  if (authority.find('@') != std::string_view::npos) return std::nullopt;
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    auto literal = core::parse_ip(authority.substr(1, close - 1));
    if (!literal || !literal->is_v6()) return std::nullopt;
    out.origin.host = core::ascii_lower(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return std::nullopt;
      port_text = after.substr(1);
      if (port_text.empty()) return std::nullopt;
    }
  } else {
    auto colon = authority.find(':');
    out.origin.host = core::ascii_lower(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return std::nullopt;
    }
    if (out.origin.host.empty() ||
        !std::all_of(out.origin.host.begin(), out.origin.host.end(), is_host_char)) {
      return std::nullopt;
    }
  }
  out.origin.port = out.origin.default_port();
  if (!port_text.empty()) {
    if (port_text.size() > 5 || !std::all_of(port_text.begin(), port_text.end(),
                                             [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    unsigned long port = std::stoul(std::string(port_text));
    if (port == 0 || port > 65535) return std::nullopt;
    out.origin.port = static_cast<std::uint16_t>(port);
  }
  out.target = rest.empty() || rest.front() == '?' ? "/" + std::string(rest) : std::string(rest);
  return out;
}

// RFC 9110 10.2.2: Location is a URI reference, resolved against the URI of the request (RFC 3986
// section 5; dot segments are passed on as they are, for the target host to interpret).
std::optional<Location> resolve_location(const Origin& base, std::string_view base_target,
                                         std::string_view location) {
  if (location.empty() || !is_clean_url_text(location)) return std::nullopt;
  if (location.starts_with("//"))
    return parse_absolute_url(base.scheme + ":" + std::string(location));
  auto scheme_end = location.find(':');
  if (scheme_end != std::string_view::npos &&
      location.find_first_of("/?#") > scheme_end) {  // a scheme, not a colon later in the path
    return parse_absolute_url(location);
  }
  location = location.substr(0, location.find('#'));
  if (location.empty()) return std::nullopt;
  std::string_view base_path = without_query(base_target);
  std::string target;
  if (location.front() == '/') {
    target = std::string(location);
  } else if (location.front() == '?') {
    target = std::string(base_path) + std::string(location);
  } else {
    target = std::string(base_path.substr(0, base_path.rfind('/') + 1)) + std::string(location);
  }
  return Location{base, std::move(target)};
}

}  // namespace pullthrough::proxy
