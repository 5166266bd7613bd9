#include "proxy/api/check_request.hpp"

#include "core/text.hpp"

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

bool is_pull(http::verb method) { return method == http::verb::get || method == http::verb::head; }

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
  if (has_body) {
    // The body is not read, so the connection is out of step with the client: close it.
    checked.refusal = is_pull(request.method())
                          ? refuse(OciError::not_found, "pull requests have no body", 400, true)
                          : refuse(OciError::unsupported,
                                   "push is not supported by this registry cache", 405, true);
    return checked;
  }
  RouteResult routed = parse_route(request.target());
  if (!routed.route) {
    checked.refusal =
        refuse(oci_error_of(routed.error), std::move(routed.message), status_of(routed.error));
    return checked;
  }
  if (routed.route->endpoint == ApiEndpoint::upload || !is_pull(request.method())) {
    checked.refusal = refuse(OciError::unsupported,
                             "this registry cache serves pulls only (GET and HEAD); push is not "
                             "supported");
    return checked;
  }
  checked.route = std::move(routed.route);
  return checked;
}

}  // namespace pullthrough::proxy
