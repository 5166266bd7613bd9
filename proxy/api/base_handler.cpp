#include "proxy/api/base_handler.hpp"

#include "health/protocol.hpp"
#include "proxy/api/forwarding.hpp"

namespace pullthrough::proxy {
namespace {

constexpr std::size_t kMaxBaseBody = std::size_t{64} * 1024;

}  // namespace

bool is_health_check(const http::request_header<>& request) {
  return request.method() == http::verb::get && request.target() == "/v2/" &&
         request[http::field::user_agent] == health::kHealthCheckUserAgent;
}

asio::awaitable<bool> BaseHandler::serve(HttpSession& session, const ApiRequest& request) {
  if (is_health_check(request.header)) co_return co_await send_health(session, request.header);
  const std::string& host = request.registry.host;
  ClientCredentials client = credentials_of(books_, request.authorization);
  auto remembered = books_.base_answer(host);
  if (request.authorization.empty() && remembered &&
      remembered->seen != core::Clock::TimePoint::min() &&
      books_.clock.now() - remembered->seen < request.registry.manifest_ttl) {
    co_return co_await send_remembered(session, request, *remembered);
  }
  if (client.offline) {
    co_return co_await send_upstream_down(session, request, client,
                                          "the token was issued while its service was down");
  }

  UpstreamRequest ping;
  ping.method = http::verb::get;
  ping.target = "/v2/";
  ping.credentials = UpstreamCredentials{UpstreamAuth::client, client.authorization};
  UpstreamResult result = co_await request.upstream.send(std::move(ping));
  if (!result.response) {
    if (request.authorization.empty() && remembered) {
      log_.debug("{}: answering /v2/ as {} last did: {}", request.client_host, host, result.error);
      co_return co_await send_remembered(session, request, *remembered);
    }
    co_return co_await send_upstream_down(session, request, client, result.error);
  }
  UpstreamResponse& upstream = *result.response;
  const unsigned status = upstream.header.result_int();
  std::vector<std::string> challenges = challenge_values(upstream.header);
  books_.learn_realm(host, challenges, request.client_host);
  if (request.authorization.empty() && (status == 200 || status == 401)) {
    books_.record_base_answer(host, RealmBook::BaseAnswer{status, challenges, books_.clock.now()});
  }
  std::string body;
  if (upstream.body) {
    WholeBody whole = co_await read_whole_body(*upstream.body, kMaxBaseBody);
    if (!whole.error) body = std::move(whole.bytes);
  }
  auto response = session.response(static_cast<http::status>(status));
  for (const auto& challenge : rewritten_challenges(challenges, request.client_host)) {
    response.insert(http::field::www_authenticate, challenge);
  }
  response.set(http::field::content_type, "application/json");
  response.body() = body.empty() ? std::string("{}") : std::move(body);
  response.prepare_payload();
  co_return co_await session.write(response);
}

asio::awaitable<bool> BaseHandler::send_remembered(HttpSession& session, const ApiRequest& request,
                                                   const RealmBook::BaseAnswer& answer) {
  auto response = session.response(static_cast<http::status>(answer.status));
  for (const auto& challenge : rewritten_challenges(answer.challenges, request.client_host)) {
    response.insert(http::field::www_authenticate, challenge);
  }
  response.set(http::field::content_type, "application/json");
  response.body() = answer.status == 401
                        ? error_body(OciError::unauthorized, "authentication required")
                        : std::string("{}");
  response.prepare_payload();
  co_return co_await session.write(response);
}

asio::awaitable<bool> BaseHandler::send_upstream_down(HttpSession& session,
                                                      const ApiRequest& request,
                                                      const ClientCredentials& client,
                                                      const std::string& why) {
  const std::string& host = request.registry.host;
  if (client.authorization.empty()) {
    // Nothing known of how this registry authenticates: let the client go on without; public
    // content is served to anyone.
    auto response = session.response(http::status::ok);
    response.set(http::field::content_type, "application/json");
    response.body() = "{}";
    response.prepare_payload();
    co_return co_await session.write(response);
  }
  auto holder = books_.tokens.holder_of(client.authorization);
  if (holder && !holder->offline) {
    // The real token service issued this token through the appliance: the credentials were
    // checked there.
    auto response = session.response(http::status::ok);
    response.set(http::field::content_type, "application/json");
    response.body() = "{}";
    response.prepare_payload();
    co_return co_await session.write(response);
  }
  if (client.offline) {
    auto response = session.response(http::status::unauthorized);
    // One read of the remembered answer (it may come from the index).
    std::vector<std::string> remembered;
    if (auto base = books_.base_answer(host)) remembered = std::move(base->challenges);
    for (const auto& challenge : rewritten_challenges(remembered, request.client_host)) {
      response.insert(http::field::www_authenticate, challenge);
    }
    response.set(http::field::content_type, "application/json");
    response.body() =
        error_body(OciError::unauthorized, "the token service of " + host +
                                               " cannot be reached, so these credentials cannot "
                                               "be checked now (" +
                                               why + ")");
    response.prepare_payload();
    co_return co_await session.write(response);
  }
  counters_.upstream_unavailable.add();
  co_return co_await session.send_error(
      OciError::unavailable,
      "upstream " + host + " cannot be reached to check these credentials (" + why + ")");
}

asio::awaitable<bool> BaseHandler::send_health(HttpSession& session,
                                               const http::request_header<>& request) {
  auto response = session.response(http::status::ok);
  response.set(http::field::content_type, "application/json");
  if (storage_ != nullptr) {
    response.set(health::kStorageHeader, storage_header_value(storage_->problem()));
  }
  if (leaving_ != nullptr && leaving_->load(std::memory_order_relaxed)) {
    response.set(health::kLeavingHeader, health::kLeavingShutdown);
  }
  if (client_events_ != nullptr) {
    auto seen = health::parse_cursor(request[health::kClientEventsHeader]);
    auto batch = client_events_->after(seen);
    response.set(health::kClientEventsHeader, health::format_cursor(batch.cursor));
    for (const auto& event : batch.events) {
      response.insert(health::kClientEventHeader, health::format_event(event));
    }
  }
  response.body() = "{}";
  response.prepare_payload();
  co_return co_await session.write(response);
}

}  // namespace pullthrough::proxy
