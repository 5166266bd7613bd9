#include "proxy/api/forwarding.hpp"

#include <algorithm>
#include <array>

#include "core/text.hpp"
#include "proxy/access/challenges.hpp"
#include "proxy/upstream/hop_fields.hpp"

namespace pullthrough::proxy {
namespace {

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// The field names a Connection field lists (comma-separated tokens), lower case.
std::vector<std::string> connection_options(const http::fields& fields) {
  std::vector<std::string> out;
  auto [first, last] = fields.equal_range(http::field::connection);
  for (auto it = first; it != last; ++it) {
    std::string_view value = it->value();
    while (!value.empty()) {
      auto comma = value.find(',');
      std::string_view token = trimmed(value.substr(0, comma));
      if (!token.empty()) out.push_back(core::ascii_lower(token));
      if (comma == std::string_view::npos) break;
      value.remove_prefix(comma + 1);
    }
  }
  return out;
}

bool hop_by_hop(std::string_view name, const std::vector<std::string>& options) {
  if (is_hop_by_hop(name)) return true;
  return std::find(options.begin(), options.end(), core::ascii_lower(name)) != options.end();
}

}  // namespace

http::fields forwarded_request_fields(const http::request_header<>& request) {
  http::fields out;
  auto options = connection_options(request);
  for (const auto& field : request) {
    std::string_view name = field.name_string();
    if (hop_by_hop(name, options) || core::iequals(name, "host") ||
        core::iequals(name, "content-length") || core::iequals(name, "expect")) {
      continue;
    }
    out.insert(name, field.value());
  }
  return out;
}

std::string rewritten_location(std::string_view location, const Origin& upstream,
                               std::string_view client_host) {
  auto parsed = parse_absolute_url(location);
  if (!parsed || !(parsed->origin == upstream)) return std::string(location);
  return "https://" + std::string(client_host) + parsed->target;
}

std::vector<std::string> challenge_values(const http::response_header<>& header) {
  std::vector<std::string> out;
  auto [first, last] = header.equal_range(http::field::www_authenticate);
  for (auto it = first; it != last; ++it) out.emplace_back(it->value());
  return out;
}

std::vector<std::string> rewritten_challenges(const std::vector<std::string>& values,
                                              std::string_view client_host) {
  std::vector<std::string> out;
  for (const auto& value : values) {
    if (auto rewritten = rewrite_challenges(value, client_host)) {
      out.push_back(std::move(rewritten->value));
    }
  }
  return out;
}

RelayedHeader relayed_response_header(const http::response_header<>& upstream,
                                      const Origin& upstream_origin, std::string_view client_host) {
  RelayedHeader out;
  out.header.result(upstream.result_int());
  out.header.reason(upstream.reason());
  auto options = connection_options(upstream);
  for (const auto& field : upstream) {
    std::string_view name = field.name_string();
    if (hop_by_hop(name, options)) continue;
    if (field.name() == http::field::location) {
      out.header.insert(name, rewritten_location(field.value(), upstream_origin, client_host));
    } else if (field.name() == http::field::www_authenticate) {
      auto rewritten = rewrite_challenges(field.value(), client_host);
      if (!rewritten) continue;
      if (!out.realm && rewritten->realm) out.realm = rewritten->realm;
      out.header.insert(name, rewritten->value);
    } else {
      out.header.insert(name, field.value());
    }
  }
  return out;
}

}  // namespace pullthrough::proxy
