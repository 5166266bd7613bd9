#include "proxy/registry_proxy.hpp"

#include "core/logging.hpp"
#include "health/protocol.hpp"
#include "proxy/api/check_request.hpp"

namespace pullthrough::proxy {
namespace {

bool is_health_check(const http::request_header<>& request) {
  return request.method() == http::verb::get && request.target() == "/v2/" &&
         request[http::field::user_agent] == health::kHealthCheckUserAgent;
}

}  // namespace

RegistryProxy::RegistryProxy(RegistryProxyParts parts, RegistryProxyLimits limits)
    : parts_(std::move(parts)),
      limits_(limits),
      log_(core::logger("proxy")),
      manifests_(*parts_.manifests, *parts_.counters),
      blobs_(*parts_.blobs, *parts_.counters, *log_),
      listings_(*parts_.counters, limits_.max_passthrough_bytes),
      handler_([this](HttpSession& session, const HttpSession::Parser& parser) {
        return handle(session, parser);
      }) {}

asio::awaitable<void> RegistryProxy::serve(TlsConnection connection) {
  HttpSession session(std::move(connection), limits_, parts_.counters->requests_rejected, *log_);
  co_await session.run(handler_);
}

asio::awaitable<bool> RegistryProxy::handle(HttpSession& session,
                                            const HttpSession::Parser& parser) {
  RegistryCounters& counters = *parts_.counters;
  const auto& header = parser.get();
  (is_health_check(header) ? counters.health_checks : counters.requests).add();
  const TlsConnection& connection = session.connection();
  bool has_body = (parser.content_length() && *parser.content_length() > 0) || parser.chunked();
  CheckedRequest checked =
      check_request(header, has_body, *parts_.config, connection.registry, connection.server_name);
  if (!checked.route) {
    counters.requests_rejected.add();
    Refusal& refusal = checked.refusal;
    if (refusal.close) session.close_after_response();
    co_return co_await session.send_error(refusal.error, std::move(refusal.message),
                                          refusal.status);
  }
  auto upstream = parts_.upstreams.find(connection.registry);
  if (upstream == parts_.upstreams.end() || upstream->second == nullptr) {
    co_return co_await session.send_error(OciError::not_found, "no upstream for this registry");
  }
  const Route& route = *checked.route;
  ApiRequest request{header, route, header.method() == http::verb::head, *connection.registry,
                     *upstream->second};
  switch (route.endpoint) {
    case ApiEndpoint::base:
      co_return co_await send_base(session);
    case ApiEndpoint::manifest:
      co_return co_await manifests_.serve(session, request);
    case ApiEndpoint::blob:
      co_return co_await blobs_.serve(session, request);
    case ApiEndpoint::tags_list:
    case ApiEndpoint::referrers:
      co_return co_await listings_.serve(session, request);
    case ApiEndpoint::upload:
      break;  // refused by check_request until push is passed through
  }
  co_return co_await session.send_error(OciError::not_found, "not a registry API path");
}

asio::awaitable<bool> RegistryProxy::send_base(HttpSession& session) {
  auto response = session.response(http::status::ok);
  response.set(http::field::content_type, "application/json");
  if (parts_.storage != nullptr) {
    response.set(health::kStorageHeader, storage_header_value(parts_.storage->problem()));
  }
  if (parts_.leaving != nullptr && parts_.leaving->load(std::memory_order_relaxed)) {
    response.set(health::kLeavingHeader, health::kLeavingShutdown);
  }
  response.body() = "{}";
  response.prepare_payload();
  co_return co_await session.write(response);
}

}  // namespace pullthrough::proxy
