#include "proxy/registry_proxy.hpp"

#include "core/logging.hpp"
#include "proxy/api/check_request.hpp"

namespace pullthrough::proxy {

RegistryProxy::RegistryProxy(RegistryProxyParts parts, RegistryProxyLimits limits)
    : parts_(std::move(parts)),
      limits_(limits),
      log_(core::logger("proxy")),
      access_(*parts_.access, *parts_.counters, *log_),
      base_(*parts_.access, *parts_.counters, *log_, parts_.storage, parts_.leaving,
            parts_.client_events),
      manifests_(*parts_.manifests, *parts_.counters, access_),
      blobs_(*parts_.blobs, *parts_.counters, *log_, access_),
      listings_(*parts_.counters, limits_.max_passthrough_bytes),
      forwards_(*parts_.access, *parts_.manifests, *parts_.counters, *log_),
      tokens_(*parts_.access, *parts_.counters, *log_),
      handler_([this](HttpSession& session, HttpSession::Parser& parser) {
        return handle(session, parser);
      }) {}

asio::awaitable<void> RegistryProxy::serve(TlsConnection connection) {
  HttpSession session(std::move(connection), limits_, parts_.counters->requests_rejected, *log_);
  co_await session.run(handler_);
}

asio::awaitable<bool> RegistryProxy::handle(HttpSession& session, HttpSession::Parser& parser) {
  RegistryCounters& counters = *parts_.counters;
  const auto& header = parser.get();
  (is_health_check(header) ? counters.health_checks : counters.requests).add();
  const TlsConnection& connection = session.connection();
  bool has_body = (parser.content_length() && *parser.content_length() > 0) || parser.chunked();
  CheckedRequest checked =
      check_request(header, has_body, *parts_.config, connection.registry, connection.server_name);
  if (!checked.passed) {
    counters.requests_rejected.add();
    Refusal& refusal = checked.refusal;
    if (refusal.close) session.close_after_response();
    co_return co_await session.send_error(refusal.error, std::move(refusal.message),
                                          refusal.status);
  }
  auto upstream = parts_.upstreams.find(connection.registry);
  if (upstream == parts_.upstreams.end() || upstream->second == nullptr) {
    if (has_body) session.close_after_response();
    co_return co_await session.send_error(OciError::not_found, "no upstream for this registry");
  }
  static const Route kNoRoute;
  auto host_field = header.find(http::field::host);
  ApiRequest request{
      header,
      checked.route ? *checked.route : kNoRoute,
      header.method() == http::verb::head,
      *connection.registry,
      *upstream->second,
      host_field != header.end() ? std::string(host_field->value()) : connection.server_name,
      header[http::field::authorization],
      {}};
  switch (checked.kind) {
    case RequestKind::base:
      co_return co_await base_.serve(session, request);
    case RequestKind::pull:
      co_return co_await pull(session, request);
    case RequestKind::listing:
      if (request.registry.share_private) co_return co_await listings_.serve(session, request);
      co_return co_await forwards_.serve(session, parser, request, checked.kind);
    case RequestKind::push:
    case RequestKind::passthrough:
      co_return co_await forwards_.serve(session, parser, request, checked.kind);
    case RequestKind::token:
      co_return co_await tokens_.serve(session, parser, request);
  }
  co_return co_await session.send_error(OciError::not_found, "not a registry API path");
}

asio::awaitable<bool> RegistryProxy::pull(HttpSession& session, ApiRequest& request) {
  Clearance clearance = co_await access_.clear(request);
  if (!clearance.allowed) co_return co_await AccessCheck::send(session, clearance);
  request.credentials = std::move(clearance.upstream);
  if (request.route.endpoint == ApiEndpoint::manifest) {
    co_return co_await manifests_.serve(session, request);
  }
  co_return co_await blobs_.serve(session, request);
}

}  // namespace pullthrough::proxy
