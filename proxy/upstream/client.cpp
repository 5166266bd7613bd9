#include "proxy/upstream/client.hpp"

#include "core/asio.hpp"
#include <utility>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string_view>

#include <boost/asio/ssl/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>

#include "core/logging.hpp"
#include "core/text.hpp"
#include "proxy/upstream/auth_challenge.hpp"
#include "proxy/upstream/authorizer.hpp"
#include "proxy/upstream/connector.hpp"
#include "proxy/upstream/hop_fields.hpp"
#include "proxy/upstream/pool.hpp"
#include "proxy/upstream/request_relay.hpp"
#include "proxy/upstream/url.hpp"

namespace pullthrough::proxy {
namespace {

// A 401 or 3xx body is read to its end (so that the connection can be reused) only when it is
// small; a bigger one costs its connection instead.
constexpr std::size_t kMaxDrainBytes = std::size_t{64} * 1024;
bool is_redirect(unsigned status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// The peer went away before answering: what a pooled connection the server has since closed
// looks like.
bool is_disconnect(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted || ec == ssl::error::stream_truncated;
}

// After a write upstream failed, how long to wait for a response the server may have sent before
// it stopped reading (a 401 or 413 to a PATCH): it is either there already or not coming.
constexpr std::chrono::milliseconds kEarlyResponseWait{1000};
// Interim (1xx) responses skipped before the final one; an upstream sending more is broken.
constexpr int kMaxInterimResponses = 8;

// A request without a body still says Content-Length: 0 when its method defines a body, as user
// agents do (RFC 9110 8.6); some servers answer 411 otherwise.
bool method_has_body(http::verb method) {
  return method == http::verb::put || method == http::verb::post || method == http::verb::patch;
}

// Copies the fields a forwarded request carries as the caller gave them: not the framing and the
// host, which are this hop's (RFC 9112 6, RFC 9110 7.2), nor the hop-by-hop ones; nor Expect,
// since the body is sent without waiting for a 100 Continue.
template <typename Message>
void copy_forwarded_fields(const http::fields& from, Message& to) {
  for (const auto& field : from) {
    bool own = field.name() == http::field::host || field.name() == http::field::content_length ||
               field.name() == http::field::expect || is_hop_by_hop(field.name_string());
    if (!own) to.insert(field.name_string(), field.value());
  }
}

}  // namespace

// Shared by the client, its coroutines and the bodies they hand out, so that a body read after
// the client is gone still finds the pool it returns its connection to.
struct UpstreamClient::State : std::enable_shared_from_this<UpstreamClient::State> {
  config::RegistryConfig registry;
  // The same registry without its credentials, for UpstreamAuth::anonymous.
  config::RegistryConfig anonymous_registry;
  UpstreamLimits limits;
  Origin registry_origin;
  UpstreamCounters counters;
  std::shared_ptr<spdlog::logger> log = core::logger("proxy");
  ConnectionPool pool;
  Connector connector;
  // UpstreamAuth::appliance: with registries[].credentials when there are any.
  Authorizer authorizer;
  // UpstreamAuth::anonymous when the registry has credentials, with a token cache of its own
  // (what anyone may read); null without credentials, where `authorizer` is anonymous already.
  std::unique_ptr<Authorizer> anonymous_authorizer;

  State(asio::io_context& io, UpstreamSettings settings, core::HostResolver& resolver,
        const core::Clock& clock)
      : registry(*settings.registry),
        anonymous_registry(registry),
        limits(settings.limits),
        registry_origin{registry.upstream.scheme, core::ascii_lower(registry.upstream.host),
                        registry.upstream.port},
        pool(io, clock, limits.max_idle_per_host, limits.idle_timeout),
        connector(io, registry, std::move(settings.own_addresses), resolver,
                  ConnectLimits{limits.connect_timeout, limits.read_timeout},
                  counters.connections_opened),
        authorizer(registry, std::move(settings.password), clock, token_fetch(),
                   counters.tokens_fetched, limits.max_token_body_bytes) {
    anonymous_registry.credentials.reset();
    if (registry.credentials) {
      anonymous_authorizer =
          std::make_unique<Authorizer>(anonymous_registry, std::string(), clock, token_fetch(),
                                       counters.tokens_fetched, limits.max_token_body_bytes);
    }
  }

  // How the authorizers send their token requests: through this client's connections.
  Authorizer::TokenFetch token_fetch() {
    return [this](const Origin& origin, const std::string& target,
                  const std::string& authorization) -> asio::awaitable<UpstreamResult> {
      const std::string no_accept;
      co_return co_await exchange(origin, http::verb::get, target, no_accept, authorization);
    };
  }

  // The authorizer that answers 401s for `auth`; null for the client's own credentials.
  Authorizer* authorizer_for(UpstreamAuth auth) {
    switch (auth) {
      case UpstreamAuth::appliance:
        return &authorizer;
      case UpstreamAuth::anonymous:
        return anonymous_authorizer ? anonymous_authorizer.get() : &authorizer;
      case UpstreamAuth::client:
        return nullptr;
    }
    return nullptr;
  }

  // --- one request and its response header -------------------------------------------------

  // A GET or HEAD made for the cache (or for a token), as send() and the authorizers make them.
  static UpstreamRequestMessage pull_request(const Origin& origin, http::verb method,
                                             const std::string& target, const std::string& accept,
                                             const std::string& authorization) {
    UpstreamRequestMessage request{method, target, 11};
    request.set(http::field::host, origin.host_field());
    request.set(http::field::user_agent, "pullthrough");
    if (!accept.empty()) request.set(http::field::accept, accept);
    if (!authorization.empty()) request.set(http::field::authorization, authorization);
    return request;
  }

  // Reads the final response's header (skipping interim 1xx ones) within `timeout` per read.
  asio::awaitable<std::unique_ptr<UpstreamParser>> read_response_header(
      Connection& connection, http::verb method, std::chrono::milliseconds timeout,
      error_code& ec) {
    for (int interim = 0;; ++interim) {
      auto parser = std::make_unique<UpstreamParser>();
      parser->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(
          limits.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
      // Blobs are GiBs: the caller bounds what it keeps. Not boost::none, which Beast 1.74
      // compares as smaller than any Content-Length (every sized body would exceed it).
      parser->body_limit(std::numeric_limits<std::uint64_t>::max());
      if (method == http::verb::head) parser->skip(true);
      co_await connection.read_header(*parser, timeout, ec);
      if (ec) co_return parser;
      unsigned status = parser->get().result_int();
      // 101 would switch protocols, which no request here asks for.
      if (status < 100 || status >= 200 || status == 101) co_return parser;
      if (interim >= kMaxInterimResponses) {
        ec = http::error::bad_status;
        co_return parser;
      }
    }
  }

  // What a failed header read means, for a request to `origin`.
  static UpstreamResult header_failure(const Origin& origin, const error_code& ec) {
    if (ec == beast::error::timeout) {
      return upstream_failure(UpstreamFailure::timeout,
                              "no response from " + origin.key() + " in time");
    }
    // Malformed, oversized, or cut short before the header ended: the server's HTTP is at
    // fault. Anything else lost the connection itself.
    bool http_error = &ec.category() == &http::make_error_code(http::error::need_more).category();
    return upstream_failure(http_error ? UpstreamFailure::protocol : UpstreamFailure::connect,
                            "no usable response from " + origin.key() + ": " + ec.message());
  }

  // The response whose header `parser` holds; its body (if any) reads from `connection`, which
  // goes back to the pool at the body's end when `reusable` and the server keeps it alive.
  UpstreamResult response_result(const Origin& origin, const std::string& target,
                                 std::unique_ptr<Connection> connection,
                                 std::unique_ptr<UpstreamParser> parser, bool reusable) {
    UpstreamResult result;
    result.response.emplace();
    UpstreamResponse& response = *result.response;
    response.header = static_cast<const http::response_header<>&>(parser->get());
    response.url = origin.url() + std::string(without_query(target));
    if (parser->is_done()) {
      if (reusable && parser->get().keep_alive()) pool.put(std::move(connection));
    } else {
      response.body = std::make_unique<Body>(shared_from_this(), std::move(connection),
                                             std::move(parser), reusable);
    }
    return result;
  }

  // Sends one request without a body to `origin` and reads the response header; the body is left
  // to the caller. A pooled connection found dead before the response began is replaced by a new
  // one once: nothing was consumed that a second attempt would lack.
  asio::awaitable<UpstreamResult> exchange(const Origin& origin, UpstreamRequestMessage request) {
    const std::string target(request.target());
    const http::verb method = request.method();
    for (int attempt = 0;; ++attempt) {
      if (pool.shut_down()) {
        co_return upstream_failure(UpstreamFailure::shutting_down, "shutting down");
      }
      std::unique_ptr<Connection> connection = attempt == 0 ? pool.take(origin) : nullptr;
      bool reused = connection != nullptr;
      if (!connection) {
        UpstreamResult failure;
        connection = co_await connector.connect(origin, failure);
        if (!connection) co_return failure;
      }
      counters.requests.add();
      if (reused) counters.connections_reused.add();

      error_code ec;
      co_await connection->write(request, limits.read_timeout, ec);
      if (ec) {
        if (reused && ec != beast::error::timeout) {
          log->debug("pooled connection to {} is dead ({}); retrying", origin.key(), ec.message());
          continue;
        }
        co_return upstream_failure(
            ec == beast::error::timeout ? UpstreamFailure::timeout : UpstreamFailure::connect,
            "cannot send to " + origin.key() + ": " + ec.message());
      }

      auto parser = co_await read_response_header(*connection, method, limits.read_timeout, ec);
      if (ec) {
        if (reused && !parser->got_some() && is_disconnect(ec)) {
          log->debug("pooled connection to {} was closed ({}); retrying", origin.key(),
                     ec.message());
          continue;
        }
        co_return header_failure(origin, ec);
      }
      co_return response_result(origin, target, std::move(connection), std::move(parser), true);
    }
  }

  asio::awaitable<UpstreamResult> exchange(const Origin& origin, http::verb method,
                                           const std::string& target, const std::string& accept,
                                           const std::string& authorization) {
    // Named: g++ 12 mishandles temporaries made inside a co_await expression.
    UpstreamRequestMessage request = pull_request(origin, method, target, accept, authorization);
    co_return co_await exchange(origin, std::move(request));
  }

  // Sends a request with a body on a connection of its own (see ForwardRequest) and reads the
  // response header. When upstream stops taking the body, a response it sent first is returned.
  asio::awaitable<UpstreamResult> exchange_with_body(const Origin& origin,
                                                     UpstreamStreamedRequest& request,
                                                     BodySource& body) {
    const std::string target(request.target());
    const http::verb method = request.method();
    if (pool.shut_down()) {
      co_return upstream_failure(UpstreamFailure::shutting_down, "shutting down");
    }
    UpstreamResult failure;
    std::unique_ptr<Connection> connection = co_await connector.connect(origin, failure);
    if (!connection) co_return failure;
    counters.requests.add();

    RelayResult relayed = co_await relay_request(*connection, request, body, limits.read_timeout);
    if (relayed.outcome == RelayResult::Outcome::body_failed) {
      // Closed here and now: upstream sees the request cut short, never a complete one.
      connection.reset();
      co_return upstream_failure(UpstreamFailure::request_body,
                                 "request body for " + origin.key() + " failed after " +
                                     std::to_string(relayed.body_bytes) +
                                     " bytes: " + relayed.error.message());
    }
    bool early = relayed.outcome == RelayResult::Outcome::write_failed;
    if (early) {
      log->debug("sending the body to {} failed after {} bytes ({}); looking for an early answer",
                 origin.key(), relayed.body_bytes, relayed.error.message());
    }
    error_code ec;
    auto parser = co_await read_response_header(
        *connection, method,
        early ? std::min(limits.read_timeout, kEarlyResponseWait) : limits.read_timeout, ec);
    if (ec) {
      if (early) {
        co_return upstream_failure(
            relayed.error == beast::error::timeout ? UpstreamFailure::timeout
                                                   : UpstreamFailure::connect,
            "cannot send the body to " + origin.key() + ": " + relayed.error.message());
      }
      co_return header_failure(origin, ec);
    }
    // After an early answer the rest of the body was never sent: the connection is out of step.
    co_return response_result(origin, target, std::move(connection), std::move(parser), !early);
  }

  // --- the whole request ---------------------------------------------------------------------

  static asio::awaitable<void> drain(UpstreamResponse& response) {
    if (response.body) {
      co_await read_whole_body(*response.body, kMaxDrainBytes);
      response.body.reset();
    }
  }

  asio::awaitable<UpstreamResult> follow(const UpstreamRequest& request) {
    if (request.method != http::verb::get && request.method != http::verb::head) {
      co_return upstream_failure(UpstreamFailure::protocol, "only GET and HEAD are sent upstream");
    }
    Origin origin = registry_origin;
    std::string target = request.target;
    // With the client's credentials, the client answers challenges: its Authorization is sent as
    // it is, and a 401 is its response.
    Authorizer* answering = authorizer_for(request.credentials.auth);
    std::string authorization = answering != nullptr
                                    ? answering->before_challenge(request.repository)
                                    : request.credentials.authorization;
    bool challenge_answered = false;
    unsigned redirects = 0;
    for (;;) {
      bool own = origin == registry_origin;
      // Named rather than a conditional expression inside the co_await: g++ 12 mishandles such
      // temporaries in a coroutine frame.
      std::string sent_authorization;
      if (own) sent_authorization = authorization;
      UpstreamResult result =
          co_await exchange(origin, request.method, target, request.accept, sent_authorization);
      if (!result.response) co_return result;
      UpstreamResponse& response = *result.response;
      unsigned status = response.header.result_int();

      // A redirect target's 401 is its own business: credentials never go there.
      if (status == 401 && own && !challenge_answered && answering != nullptr) {
        auto challenge = answering->usable_challenge(response.header, authorization);
        if (!challenge) co_return result;
        // Read the 401's body first, so that its connection can serve the token request.
        co_await drain(response);
        Authorizer::Answer answer =
            co_await answering->answer(*challenge, request.repository, authorization);
        if (answer.failure) co_return std::move(*answer.failure);
        if (!answer.authorization) co_return result;
        authorization = std::move(*answer.authorization);
        challenge_answered = true;
        continue;
      }

      if (is_redirect(status)) {
        auto location_field = response.header.find(http::field::location);
        if (location_field == response.header.end()) co_return result;
        if (redirects >= limits.max_redirects) {
          co_return upstream_failure(UpstreamFailure::protocol,
                                     "more than " + std::to_string(limits.max_redirects) +
                                         " redirects from " + response.url);
        }
        auto next = resolve_location(origin, target, location_field->value());
        if (!next) {
          co_return upstream_failure(UpstreamFailure::protocol,
                                     "unusable redirect location from " + response.url);
        }
        log->debug("{} redirected ({}) to {}", response.url, status,
                   next->origin.url() + std::string(without_query(next->target)));
        co_await drain(response);
        origin = std::move(next->origin);
        target = std::move(next->target);
        ++redirects;
        counters.redirects_followed.add();
        continue;
      }
      co_return result;
    }
  }

  void count(UpstreamFailure failure) {
    switch (failure) {
      case UpstreamFailure::resolve:
        counters.failures_resolve.add();
        break;
      case UpstreamFailure::own_address:
        counters.failures_own_address.add();
        break;
      case UpstreamFailure::connect:
        counters.failures_connect.add();
        break;
      case UpstreamFailure::tls:
        counters.failures_tls.add();
        break;
      case UpstreamFailure::timeout:
        counters.failures_timeout.add();
        break;
      case UpstreamFailure::protocol:
        counters.failures_protocol.add();
        break;
      case UpstreamFailure::auth:
        counters.failures_auth.add();
        break;
      case UpstreamFailure::request_body:
        counters.failures_request_body.add();
        break;
      case UpstreamFailure::shutting_down:
        break;
    }
  }

  static asio::awaitable<UpstreamResult> send(std::shared_ptr<State> self,
                                              UpstreamRequest request) {
    UpstreamResult result;
    try {
      result = co_await self->follow(request);
    } catch (const std::exception& e) {
      result = upstream_failure(UpstreamFailure::protocol,
                                std::string("upstream request failed: ") + e.what());
    }
    if (!result.response) {
      self->count(result.failure);
      self->log->debug("registry {}: {} {} failed ({}): {}", self->registry.host,
                       std::string(http::to_string(request.method)),
                       std::string(without_query(request.target)), to_string(result.failure),
                       result.error);
    }
    co_return result;
  }

  // --- forwarding ---------------------------------------------------------------------------

  asio::awaitable<UpstreamResult> forward_once(ForwardRequest& request) {
    const Origin origin = request.origin ? *request.origin : registry_origin;
    if (request.body == nullptr) {
      UpstreamRequestMessage message{request.method, request.target, 11};
      copy_forwarded_fields(request.fields, message);
      message.set(http::field::host, origin.host_field());
      if (method_has_body(request.method)) message.content_length(0);
      co_return co_await exchange(origin, std::move(message));
    }
    UpstreamStreamedRequest message{request.method, request.target, 11};
    copy_forwarded_fields(request.fields, message);
    message.set(http::field::host, origin.host_field());
    if (auto length = request.body->content_length()) {
      message.content_length(*length);
    } else {
      message.chunked(true);
    }
    co_return co_await exchange_with_body(origin, message, *request.body);
  }

  static asio::awaitable<UpstreamResult> forward(std::shared_ptr<State> self,
                                                 ForwardRequest request) {
    UpstreamResult result;
    try {
      result = co_await self->forward_once(request);
    } catch (const std::exception& e) {
      result = upstream_failure(UpstreamFailure::protocol,
                                std::string("upstream request failed: ") + e.what());
    }
    // Never the fields (Authorization) nor the query (upload state, signatures).
    std::string where = (request.origin ? request.origin->url() : self->registry_origin.url()) +
                        std::string(without_query(request.target));
    if (result.response) {
      self->log->debug("registry {}: forwarded {} {}: {}", self->registry.host,
                       std::string(http::to_string(request.method)), where,
                       result.response->header.result_int());
    } else {
      self->count(result.failure);
      self->log->debug("registry {}: forwarding {} {} failed ({}): {}", self->registry.host,
                       std::string(http::to_string(request.method)), where,
                       to_string(result.failure), result.error);
    }
    co_return result;
  }

  // --- the body ----------------------------------------------------------------------------

  class Body final : public UpstreamBody {
   public:
    // `reusable`: the connection may serve another request once this body has been read.
    Body(std::shared_ptr<State> state, std::unique_ptr<Connection> connection,
         std::unique_ptr<UpstreamParser> parser, bool reusable)
        : state_(std::move(state)),
          connection_(std::move(connection)),
          parser_(std::move(parser)),
          reusable_(reusable),
          content_length_(parser_->content_length()
                              ? std::optional<std::uint64_t>(*parser_->content_length())
                              : std::nullopt) {}

    asio::awaitable<BodyRead> read_some(std::span<std::uint8_t> out) override {
      if (done_) co_return BodyRead{};
      if (!connection_) co_return BodyRead{0, error_};
      // An empty buffer cannot make progress, and a 0-byte answer would read as the end.
      if (out.empty()) co_return BodyRead{0, asio::error::invalid_argument};
      auto& body = parser_->get().body();
      for (;;) {
        body.data = out.data();
        body.size = out.size();
        error_code ec;
        co_await connection_->read_some(*parser_, state_->limits.read_timeout, ec);
        // The caller's buffer is full: not an error, just all this read can take.
        if (ec == http::error::need_buffer) ec = {};
        std::size_t bytes = out.size() - body.size;
        body.data = nullptr;
        body.size = 0;
        if (ec) {
          connection_.reset();
          error_ = ec;
          // The bytes that did arrive are handed out; the error comes with the next read.
          co_return bytes > 0 ? BodyRead{bytes, {}} : BodyRead{0, ec};
        }
        if (parser_->is_done()) {
          done_ = true;
          if (reusable_ && parser_->get().keep_alive()) state_->pool.put(std::move(connection_));
          connection_.reset();
          co_return BodyRead{bytes, {}};
        }
        if (bytes > 0) co_return BodyRead{bytes, {}};
      }
    }

    std::optional<std::uint64_t> content_length() const override { return content_length_; }

   private:
    std::shared_ptr<State> state_;
    std::unique_ptr<Connection> connection_;
    std::unique_ptr<UpstreamParser> parser_;
    bool reusable_;
    std::optional<std::uint64_t> content_length_;
    bool done_ = false;
    error_code error_;
  };
};

UpstreamClient::UpstreamClient(asio::io_context& io, UpstreamSettings settings,
                               core::HostResolver& resolver, const core::Clock& clock) {
  if (settings.registry == nullptr) throw std::invalid_argument("UpstreamClient: no registry");
  state_ = std::make_shared<State>(io, std::move(settings), resolver, clock);
}

UpstreamClient::~UpstreamClient() { state_->pool.shutdown(); }

asio::awaitable<UpstreamResult> UpstreamClient::send(UpstreamRequest request) {
  return State::send(state_, std::move(request));
}

asio::awaitable<UpstreamResult> UpstreamClient::forward(ForwardRequest request) {
  return State::forward(state_, std::move(request));
}

void UpstreamClient::shutdown() { state_->pool.shutdown(); }

const UpstreamCounters& UpstreamClient::counters() const { return state_->counters; }

}  // namespace pullthrough::proxy
