#include "proxy/api/token_handler.hpp"

#include <nlohmann/json.hpp>

#include "proxy/api/forward_handler.hpp"
#include "proxy/api/forwarding.hpp"
#include "proxy/upstream/auth_challenge.hpp"

namespace pullthrough::proxy {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> form_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      int high = hex_value(text[i + 1]);
      int low = hex_value(text[i + 2]);
      if (high < 0 || low < 0) return std::nullopt;
      out.push_back(static_cast<char>(high * 16 + low));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> form_value(std::string_view form, std::string_view key) {
  while (!form.empty()) {
    auto amp = form.find('&');
    std::string_view pair = form.substr(0, amp);
    auto eq = pair.find('=');
    auto name = form_decode(pair.substr(0, eq));
    if (name && *name == key) {
      if (eq == std::string_view::npos) return std::string();
      return form_decode(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    form.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

asio::awaitable<bool> TokenHandler::serve(HttpSession& session, HttpSession::Parser& parser,
                                          const ApiRequest& request) {
  const std::string& host = request.registry.host;
  counters_.token_requests.add();
  const http::verb method = request.header.method();
  const std::string target(request.header.target());
  const std::string authorization(request.authorization);
  http::fields fields = forwarded_request_fields(request.header);
  // The form is read whole: it is small, and the credentials in it say whose token this is.
  std::string form;
  if (auto body = session.request_body(parser)) {
    if (auto length = body->content_length(); length && *length > kMaxFormBytes) {
      session.close_after_response();
      co_return co_await session.send_error(OciError::unsupported, "token request body too large",
                                            413);
    }
    WholeBody whole = co_await read_whole_body(*body, kMaxFormBytes);
    if (whole.error == http::error::body_limit) {
      session.close_after_response();
      co_return co_await session.send_error(OciError::unsupported, "token request body too large",
                                            413);
    }
    if (whole.error) co_return false;
    form = std::move(whole.bytes);
  }
  ClientIdentity holder;
  if (!authorization.empty()) {
    holder = books_.identities.of_authorization(authorization);
  } else if (auto user = form_value(form, "username"), password = form_value(form, "password");
             user && password) {
    holder = books_.identities.of_password(*user, *password);
  } else if (auto refresh = form_value(form, "refresh_token"); refresh && !refresh->empty()) {
    holder = books_.identities.of_authorization("Refresh " + *refresh);
  }

  auto realm = co_await realm_of(request);
  if (!realm) {
    co_return co_await send_offline(session, holder, host,
                                    "no token realm is known for " + host + " yet");
  }
  if (!realm->origin.tls() && request.registry.upstream.scheme == "https") {
    co_return co_await session.send_error(
        OciError::upstream_error,
        "the token realm of " + host + " is plain http: credentials are not sent there", 502);
  }
  ForwardRequest forward;
  forward.method = method;
  forward.origin = realm->origin;
  forward.target = realm->target;
  if (auto query = target.find('?'); query != std::string::npos && query + 1 < target.size()) {
    forward.target += (realm->target.find('?') == std::string::npos ? "?" : "&");
    forward.target += target.substr(query + 1);
  }
  forward.fields = std::move(fields);
  StringBody body(form);
  if (method == http::verb::post) forward.body = &body;
  UpstreamResult result = co_await request.upstream.forward(std::move(forward));
  if (!result.response) {
    co_return co_await send_offline(session, holder, host,
                                    std::string(to_string(result.failure)) + ": " + result.error);
  }
  UpstreamResponse& response = *result.response;
  const unsigned status = response.header.result_int();
  if (status >= 500) {
    co_return co_await send_offline(session, holder, host,
                                    "the token service answered " + std::to_string(status));
  }
  std::string answer;
  if (response.body) {
    WholeBody whole = co_await read_whole_body(*response.body, kMaxTokenBytes);
    if (whole.error) {
      co_return co_await session.send_error(
          OciError::upstream_error,
          "the token service's answer broke off or is too long: " + whole.error.message(), 502);
    }
    answer = std::move(whole.bytes);
  }
  if (status == 200) {
    if (auto token = parse_token_response(answer)) {
      books_.tokens.issued(token->value, holder, token->expires_in);
    }
  }
  auto reply = session.response(static_cast<http::status>(status));
  for (std::string_view name : {"Content-Type", "WWW-Authenticate", "Cache-Control", "Pragma"}) {
    auto [first, last] = response.header.equal_range(name);
    for (auto it = first; it != last; ++it) reply.insert(name, it->value());
  }
  reply.body() = std::move(answer);
  reply.prepare_payload();
  co_return co_await session.write(reply);
}

asio::awaitable<std::optional<Location>> TokenHandler::realm_of(const ApiRequest& request) {
  const std::string& host = request.registry.host;
  if (auto known = books_.realms.realm(host)) co_return known;
  // Learnt from the last answer to GET /v2/ kept from before a restart, else asked for now.
  if (auto remembered = books_.base_answer(host)) {
    if (auto realm = books_.learn_realm(host, remembered->challenges, request.client_host)) {
      co_return realm;
    }
  }
  UpstreamRequest ping;
  ping.method = http::verb::get;
  ping.target = "/v2/";
  ping.credentials = UpstreamCredentials{UpstreamAuth::client, {}};
  UpstreamResult result = co_await request.upstream.send(std::move(ping));
  if (!result.response) co_return std::nullopt;
  const std::vector<std::string> challenges = challenge_values(result.response->header);
  co_return books_.learn_realm(host, challenges, request.client_host);
}

asio::awaitable<bool> TokenHandler::send_offline(HttpSession& session, const ClientIdentity& holder,
                                                 const std::string& host, const std::string& why) {
  counters_.offline_tokens.add();
  log_.warn("token service of {} unavailable ({}): issuing an offline token to client {}", host,
            why, holder.log_text());
  std::string token = books_.tokens.issue_offline(holder, kOfflineLifetime);
  nlohmann::json body = {
      {"token", token}, {"access_token", token}, {"expires_in", kOfflineLifetime.count()}};
  auto reply = session.response(http::status::ok);
  reply.set(http::field::content_type, "application/json");
  reply.body() = body.dump();
  reply.prepare_payload();
  co_return co_await session.write(reply);
}

}  // namespace pullthrough::proxy
