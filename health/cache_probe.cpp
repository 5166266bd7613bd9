#include "health/cache_probe.hpp"

#include "core/asio.hpp"

#include <stdexcept>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <fmt/format.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/logging.hpp"
#include "core/text.hpp"
#include "core/units.hpp"
#include "health/protocol.hpp"

namespace pullthrough::health {
namespace {

std::string failure(const char* step, const error_code& ec, std::chrono::milliseconds timeout) {
  if (ec == beast::error::timeout) {
    return fmt::format("no answer within {} ({})", core::format_duration(timeout), step);
  }
  return fmt::format("{}: {}", step, ec.message());
}

// A client context: TLS 1.2 at least, and with `ca_pem` the peer verified against it.
std::shared_ptr<asio::ssl::context> make_context(const std::optional<std::string>& ca_pem) {
  auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
  if (ca_pem) {
    error_code ec;
    context->add_certificate_authority(asio::buffer(*ca_pem), ec);
    if (ec) throw std::runtime_error("health check: the CA certificate: " + ec.message());
    context->set_verify_mode(asio::ssl::verify_peer);
  } else {
    context->set_verify_mode(asio::ssl::verify_none);
  }
  return context;
}

bool verifies_peer(asio::ssl::context& context) {
  return SSL_CTX_get_verify_mode(context.native_handle()) != SSL_VERIFY_NONE;
}

}  // namespace

CheckResult judge_answer(const http::response_header<>& answer) {
  if (answer.find(health::kLeavingHeader) != answer.end()) {
    return CheckResult{
        false,
        "the cache is leaving (" + core::printable(answer[health::kLeavingHeader], 32) + ")",
        {},
        true};
  }
  if (answer.result() != http::status::ok) {
    return CheckResult{false,
                       fmt::format("GET /v2/ answered {} {}", answer.result_int(),
                                   core::printable(answer.reason(), 64)),
                       {}};
  }
  auto storage = answer[health::kStorageHeader];
  if (!storage.empty() && storage != health::kStorageOk) {
    return CheckResult{false, "the cache reports its storage " + core::printable(storage, 32), {}};
  }
  return CheckResult{true, "GET /v2/ answered 200", {}};
}

std::optional<ClientEventsAnswer> read_client_events(const http::response_header<>& answer) {
  auto cursor_field = answer.find(kClientEventsHeader);
  if (cursor_field == answer.end()) return std::nullopt;
  auto cursor = parse_cursor(cursor_field->value());
  if (!cursor) return std::nullopt;
  ClientEventsAnswer out{*cursor, {}};
  auto [first, last] = answer.equal_range(kClientEventHeader);
  for (auto it = first; it != last && out.events.size() < kMaxEventsPerAnswer; ++it) {
    if (auto event = parse_event(it->value())) out.events.push_back(std::move(*event));
  }
  return out;
}

TlsCacheProbe::TlsCacheProbe(std::string server_name, CaSource ca, ClientEventSink events)
    : server_name_(std::move(server_name)), ca_(std::move(ca)), events_(std::move(events)) {
  context_ = make_context(ca_ ? ca_() : std::nullopt);
}

TlsCacheProbe::TlsCacheProbe(std::string server_name, std::optional<std::string> ca_pem)
    : TlsCacheProbe(std::move(server_name), CaSource([ca_pem] { return ca_pem; }), {}) {}

bool TlsCacheProbe::verifies() const {
  std::lock_guard lock(mutex_);
  return verifies_peer(*context_);
}

std::shared_ptr<asio::ssl::context> TlsCacheProbe::current_context() {
  std::lock_guard lock(mutex_);
  if (!verifies_peer(*context_) && ca_) {
    if (auto pem = ca_()) {
      context_ = make_context(pem);
      core::logger("health")->info(
          "found the CA certificate: cache certificates are verified from now on");
    }
  }
  return context_;
}

asio::awaitable<CheckResult> TlsCacheProbe::check(const core::Endpoint& target,
                                                  std::chrono::milliseconds timeout) {
  auto began = std::chrono::steady_clock::now();
  auto elapsed = [began] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 began);
  };
  auto done = [&](bool ok, std::string detail) {
    return CheckResult{ok, std::move(detail), elapsed()};
  };
  std::shared_ptr<asio::ssl::context> context;
  try {
    context = current_context();
  } catch (const std::exception& e) {
    co_return done(false, e.what());
  }
  bool verifying = verifies_peer(*context);
  beast::ssl_stream<beast::tcp_stream> stream(co_await asio::this_coro::executor, *context);
  SSL* ssl = stream.native_handle();
  if (SSL_set_tlsext_host_name(ssl, server_name_.c_str()) != 1 ||
      (verifying && SSL_set1_host(ssl, server_name_.c_str()) != 1)) {
    co_return done(false, "TLS setup failed for " + server_name_);
  }
  // One deadline for the whole exchange: a cache that accepts connections but never answers
  // (a stopped process keeps its listening socket) fails here.
  auto& tcp = beast::get_lowest_layer(stream);
  tcp.expires_after(timeout);
  error_code ec;
  asio::ip::tcp::endpoint peer(target.address, target.port);
  co_await tcp.async_connect(peer, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return done(false, failure("connect", ec, timeout));
  co_await stream.async_handshake(asio::ssl::stream_base::client,
                                  asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return done(false, failure("TLS handshake", ec, timeout));

  http::request<http::empty_body> request{http::verb::get, "/v2/", 11};
  request.set(http::field::host, server_name_);
  request.set(http::field::user_agent, health::kHealthCheckUserAgent);
  request.set(http::field::connection, "close");
  const std::string cache = events_ ? target.to_string() : std::string();
  if (events_) {
    std::lock_guard lock(mutex_);
    auto seen = cursors_.find(cache);
    if (seen != cursors_.end()) request.set(kClientEventsHeader, format_cursor(seen->second));
  }
  co_await http::async_write(stream, request, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return done(false, failure("sending GET /v2/", ec, timeout));
  // The verdict needs the status line and the fields only, so the body is never read: nothing is
  // sized by the cache's Content-Length (Beast 1.74 lets a huge one past body_limit and a
  // string body would reserve it).
  beast::flat_buffer buffer;
  http::response_parser<http::empty_body> parser;
  parser.header_limit(kMaxAnswerHeaderBytes);
  co_await http::async_read_header(stream, buffer, parser,
                                   asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return done(false, failure("reading the answer to GET /v2/", ec, timeout));
  tcp.close();

  if (events_) {
    if (auto events = read_client_events(parser.get().base())) {
      {
        std::lock_guard lock(mutex_);
        cursors_[cache] = events->cursor;
      }
      events_(*events, target);
    }
  }
  CheckResult judged = judge_answer(parser.get().base());
  judged.took = elapsed();
  co_return judged;
}

}  // namespace pullthrough::health
