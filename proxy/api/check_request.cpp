#include "proxy/api/check_request.hpp"

#include "core/text.hpp"
#include "proxy/access/challenges.hpp"

namespace pullthrough::proxy {
namespace {

Refusal refuse(OciError error, std::string message, unsigned status = 0, bool close = false) {
  return Refusal{error, std::move(message), status, close};
}

// A refusal for the Host field, or nothing when it names the connection's registry.
std::optional<Refusal> check_host(const http::request_header<>& request,
                                  const config::Config& config,
                                  const config::RegistryConfig* registry,
                                  std::string_view server_name) {
  auto found = request.find(http::field::host);
  if (found == request.end() && request.version() < 11) return std::nullopt;  // SNI alone
  std::string host = found == request.end() ? std::string() : host_of(found->value());
  if (host.empty()) return refuse(OciError::not_found, "a Host field is required", 400, true);
  if (config.find_registry(host) != registry) {
    return refuse(OciError::misdirected,
                  "this connection is for " + std::string(server_name) + ", not " +
                      std::string(found->value()),
                  0, true);
  }
  return std::nullopt;
}

bool is_read(http::verb method) { return method == http::verb::get || method == http::verb::head; }

RequestKind kind_of(ApiEndpoint endpoint, http::verb method) {
  switch (endpoint) {
    case ApiEndpoint::base:
      return is_read(method) ? RequestKind::base : RequestKind::passthrough;
    case ApiEndpoint::manifest:
      if (is_read(method)) return RequestKind::pull;
      return method == http::verb::put || method == http::verb::delete_ ? RequestKind::push
                                                                        : RequestKind::passthrough;
    case ApiEndpoint::blob:
      if (is_read(method)) return RequestKind::pull;
      return method == http::verb::delete_ ? RequestKind::push : RequestKind::passthrough;
    case ApiEndpoint::upload:
      return RequestKind::push;
    case ApiEndpoint::tags_list:
    case ApiEndpoint::referrers:
      return is_read(method) ? RequestKind::listing : RequestKind::passthrough;
  }
  return RequestKind::passthrough;
}

// Whether a request would change something upstream: refused when pushes are denied. A token
// request is a read, whatever its method.
bool writes(RequestKind kind, http::verb method) {
  if (kind == RequestKind::token) return false;
  return kind == RequestKind::push || !is_read(method);
}

std::optional<std::uint64_t> decimal(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return value;
}

// A chunk of an upload names the bytes it carries as "<first>-<last>" (inclusive, no unit), and
// its Content-Length must be that many. Refused here, before a byte of the chunk is read.
std::optional<Refusal> check_content_range(const http::request_header<>& request, bool has_body) {
  auto range = request.find(http::field::content_range);
  if (range == request.end()) return std::nullopt;
  std::string_view value = range->value();
  auto dash = value.find('-');
  auto first = dash == std::string_view::npos ? std::nullopt : decimal(value.substr(0, dash));
  auto last = dash == std::string_view::npos ? std::nullopt : decimal(value.substr(dash + 1));
  if (!first || !last || *last < *first) {
    return refuse(OciError::range_invalid,
                  "Content-Range \"" + core::printable(value, 64) +
                      "\" is not <first>-<last> with first <= last",
                  416, has_body);
  }
  auto length = request.find(http::field::content_length);
  if (length != request.end()) {
    auto announced = decimal(length->value());
    if (announced && *announced != *last - *first + 1) {
      return refuse(OciError::range_invalid,
                    "Content-Range " + std::string(value) + " names " +
                        std::to_string(*last - *first + 1) + " bytes, Content-Length " +
                        std::string(length->value()),
                    416, has_body);
    }
  }
  return std::nullopt;
}

}  // namespace

std::string host_of(std::string_view value) {
  if (!value.empty() && value.front() == '[') {
    auto close = value.find(']');
    return close == std::string_view::npos ? std::string()
                                           : core::ascii_lower(value.substr(1, close - 1));
  }
  return core::ascii_lower(value.substr(0, value.find(':')));
}

CheckedRequest check_request(const http::request_header<>& request, bool has_body,
                             const config::Config& config, const config::RegistryConfig* registry,
                             std::string_view server_name) {
  CheckedRequest checked;
  if (auto refused = check_host(request, config, registry, server_name)) {
    checked.refusal = std::move(*refused);
    return checked;
  }
  const http::verb method = request.method();
  const std::string_view target = request.target();
  std::optional<RequestKind> kind;
  if (target.substr(0, target.find('?')) == kTokenPath) {
    if (method != http::verb::get && method != http::verb::post) {
      checked.refusal = refuse(OciError::unsupported, "the token endpoint takes GET and POST", 405);
      return checked;
    }
    kind = RequestKind::token;
  } else {
    RouteResult routed = parse_route(target);
    if (routed.route) {
      checked.route = std::move(routed.route);
      kind = kind_of(checked.route->endpoint, method);
    } else if (routed.error == RouteError::not_found) {
      kind = RequestKind::passthrough;
    } else {
      checked.refusal =
          refuse(oci_error_of(routed.error), std::move(routed.message), status_of(routed.error));
      return checked;
    }
  }
  const bool reads_only =
      *kind == RequestKind::base || *kind == RequestKind::pull || *kind == RequestKind::listing;
  if (has_body && reads_only) {
    // The body is not read, so the connection is out of step with the client: close it.
    checked.route.reset();
    checked.refusal = refuse(OciError::not_found, "pull requests have no body", 400, true);
    return checked;
  }
  if (registry != nullptr && registry->push == config::PushMode::deny && writes(*kind, method)) {
    checked.route.reset();
    checked.refusal =
        refuse(OciError::unsupported,
               "this registry cache does not pass pushes to " + registry->host +
                   " through (registries[].push: deny); push to " + registry->upstream.to_string() +
                   " from a machine whose DNS does not point " + registry->host + " at the cache",
               405, has_body);
    return checked;
  }
  if (checked.route && checked.route->endpoint == ApiEndpoint::upload) {
    if (auto refused = check_content_range(request, has_body)) {
      checked.route.reset();
      checked.refusal = std::move(*refused);
      return checked;
    }
  }
  checked.passed = true;
  checked.kind = *kind;
  return checked;
}

}  // namespace pullthrough::proxy
