#include "proxy/upstream_client.hpp"

#include <utility>

#include <algorithm>
#include <cctype>
#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string_view>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "certs/openssl.hpp"
#include "core/logging.hpp"
#include "core/text.hpp"
#include "proxy/auth_challenge.hpp"
#include "proxy/url.hpp"

namespace pullthrough::proxy {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using asio::ip::tcp;
using boost::system::error_code;

using Parser = http::response_parser<http::buffer_body>;
using Request = http::request<http::empty_body>;

// A 401 or 3xx body is read to its end (so that the connection can be reused) only when it is
// small; a bigger one costs its connection instead.
constexpr std::size_t kMaxDrainBytes = std::size_t{64} * 1024;
// A token is used until a little before the endpoint says it expires, so that one taken from the
// cache does not expire on its way to the registry.
constexpr std::chrono::seconds kTokenExpiryMargin{10};
// Bounds of the token cache and of the per-repository memory of challenges: an upstream cannot
// grow either without limit by answering every repository with a new scope.
constexpr std::size_t kMaxCachedTokens = 4096;
constexpr std::size_t kMaxRememberedRepositories = 4096;

std::string base64(std::string_view text) {
  std::string out(4 * ((text.size() + 2) / 3) + 1, '\0');
  int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  out.resize(static_cast<std::size_t>(std::max(written, 0)));
  return out;
}

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

UpstreamResult failed(UpstreamFailure failure, std::string error) {
  UpstreamResult result;
  result.failure = failure;
  result.error = std::move(error);
  return result;
}

constexpr std::size_t kReadBufferBytes = std::size_t{64} * 1024;

// One upstream connection, plain or TLS, used by one request at a time.
//
// Beast's stream timeouts are only sound when the stream's operations and its timer handlers run
// on one strand; the awaiting coroutine may run on a multi-threaded io_context. So every operation
// runs as a coroutine of its own on the connection's strand, and its caller awaits that.
class Connection {
 public:
  // Beast sizes each socket read by the buffer's free capacity (at least 512 bytes). A buffer that
  // starts empty and is drained by every parse never grows, so a blob would arrive 512 bytes per
  // read; reserving a TLS record's worth and more keeps reads large.
  explicit Connection(Origin origin) : origin_(std::move(origin)), key_(origin_.key()) {
    buffer_.reserve(kReadBufferBytes);
  }
  virtual ~Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Each fails with beast::error::timeout when not done within `timeout`.
  virtual asio::awaitable<void> write(Request& request, std::chrono::milliseconds timeout,
                                      error_code& ec) = 0;
  virtual asio::awaitable<void> read_header(Parser& parser, std::chrono::milliseconds timeout,
                                            error_code& ec) = 0;
  virtual asio::awaitable<void> read_some(Parser& parser, std::chrono::milliseconds timeout,
                                          error_code& ec) = 0;

  const Origin& origin() const { return origin_; }
  const std::string& key() const { return key_; }
  // Holds what was read past the parser's position; empty between responses, since requests are
  // not pipelined.
  std::size_t buffered() const { return buffer_.size(); }
  core::Clock::TimePoint idle_since{};

 protected:
  beast::flat_buffer buffer_;

 private:
  Origin origin_;
  std::string key_;
};

template <typename Stream>
class StreamConnection final : public Connection {
 public:
  StreamConnection(Origin origin, Stream stream)
      : Connection(std::move(origin)), stream_(std::move(stream)) {}

  asio::awaitable<void> write(Request& request, std::chrono::milliseconds timeout,
                              error_code& ec) override {
    co_await asio::co_spawn(stream_.get_executor(), write_on_strand(request, timeout, ec),
                            asio::use_awaitable);
  }
  asio::awaitable<void> read_header(Parser& parser, std::chrono::milliseconds timeout,
                                    error_code& ec) override {
    co_await asio::co_spawn(stream_.get_executor(), read_on_strand(parser, true, timeout, ec),
                            asio::use_awaitable);
  }
  asio::awaitable<void> read_some(Parser& parser, std::chrono::milliseconds timeout,
                                  error_code& ec) override {
    co_await asio::co_spawn(stream_.get_executor(), read_on_strand(parser, false, timeout, ec),
                            asio::use_awaitable);
  }

 private:
  asio::awaitable<void> write_on_strand(Request& request, std::chrono::milliseconds timeout,
                                        error_code& ec) {
    beast::get_lowest_layer(stream_).expires_after(timeout);
    co_await http::async_write(stream_, request, asio::redirect_error(asio::use_awaitable, ec));
    beast::get_lowest_layer(stream_).expires_never();
  }
  asio::awaitable<void> read_on_strand(Parser& parser, bool header,
                                       std::chrono::milliseconds timeout, error_code& ec) {
    beast::get_lowest_layer(stream_).expires_after(timeout);
    if (header) {
      co_await http::async_read_header(stream_, buffer_, parser,
                                       asio::redirect_error(asio::use_awaitable, ec));
    } else {
      co_await http::async_read_some(stream_, buffer_, parser,
                                     asio::redirect_error(asio::use_awaitable, ec));
    }
    beast::get_lowest_layer(stream_).expires_never();
  }

  Stream stream_;
};

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// Bridges core::HostResolver's callback to a completion token. The callback may run before
// resolve() returns, and on any io_context thread, so the completion is posted to the caller's
// executor, which is kept busy (outstanding work) until then.
template <typename CompletionToken>
auto async_resolve_host(core::HostResolver& resolver, std::string host, CompletionToken&& token) {
  return asio::async_initiate<CompletionToken, void(core::ResolveResult)>(
      [&resolver](auto handler, const std::string& name) {
        using Handler = decltype(handler);
        auto shared = std::make_shared<Handler>(std::move(handler));
        auto executor = asio::prefer(asio::get_associated_executor(*shared),
                                     asio::execution::outstanding_work.tracked);
        resolver.resolve(name, [shared, executor](core::ResolveResult result) {
          asio::post(executor, [shared, result = std::move(result)]() mutable {
            (*shared)(std::move(result));
          });
        });
      },
      token, std::move(host));
}

struct TokenKey {
  std::string realm;
  std::string service;
  std::string scope;
  std::string text() const { return realm + '\n' + service + '\n' + scope; }
};

struct CachedToken {
  std::string value;
  core::Clock::TimePoint expires;
};

// What to do about a 401: retry with `authorization`, give up with `failure`, or neither (return
// the 401 as the response).
struct ChallengeAnswer {
  std::optional<std::string> authorization;
  std::optional<UpstreamResult> failure;
};

template <typename Map>
void make_room(Map& map, std::size_t bound) {
  if (map.size() >= bound) map.erase(map.begin());
}

}  // namespace

// Shared by the client, its coroutines and the bodies they hand out, so that a body read after
// the client is gone still finds the pool it returns its connection to.
struct UpstreamClient::State : std::enable_shared_from_this<UpstreamClient::State> {
  asio::io_context& io;
  config::RegistryConfig registry;
  std::string password;
  std::vector<core::IpAddress> own_addresses;
  UpstreamLimits limits;
  core::HostResolver& resolver;
  const core::Clock& clock;
  Origin registry_origin;
  ssl::context tls{ssl::context::tls_client};
  UpstreamCounters counters;
  std::shared_ptr<spdlog::logger> log = core::logger("proxy");

  // Guards everything below. Never held across a co_await.
  std::mutex mutex;
  bool shut_down = false;
  std::map<std::string, std::vector<std::unique_ptr<Connection>>> idle;
  asio::steady_timer sweep_timer;
  bool sweep_scheduled = false;
  std::map<std::string, CachedToken> tokens;  // by TokenKey::text()
  // The token a repository needed last time, so the next request sends it without a 401 first.
  std::map<std::string, TokenKey> repository_tokens;
  // The registry answered with a Basic challenge once: later requests send the credentials at
  // once.
  bool basic_seen = false;

  State(asio::io_context& io_context, UpstreamSettings settings, core::HostResolver& host_resolver,
        const core::Clock& time)
      : io(io_context),
        registry(*settings.registry),
        password(std::move(settings.password)),
        own_addresses(std::move(settings.own_addresses)),
        limits(settings.limits),
        resolver(host_resolver),
        clock(time),
        sweep_timer(io_context) {
    for (auto& address : own_addresses) address = core::unmapped(address);
    registry_origin = Origin{registry.upstream.scheme, core::ascii_lower(registry.upstream.host),
                             registry.upstream.port};
    SSL_CTX* ctx = tls.native_handle();
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    static constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_CTX_set_alpn_protos(ctx, kAlpnHttp11, sizeof kAlpnHttp11);
    error_code ec;
    tls.set_default_verify_paths(ec);
    if (ec) log->warn("registry {}: no system trust store: {}", registry.host, ec.message());
    if (!registry.ca_file.empty()) {
      tls.load_verify_file(registry.ca_file, ec);
      if (ec) {
        throw std::runtime_error("registry " + registry.host + ": cannot load ca_file " +
                                 registry.ca_file + ": " + ec.message());
      }
    }
    tls.set_verify_mode(ssl::verify_peer);
  }

  // --- the pool ----------------------------------------------------------------------------

  std::unique_ptr<Connection> take_idle(const Origin& origin) {
    std::vector<std::unique_ptr<Connection>> expired;
    std::unique_ptr<Connection> found;
    {
      std::lock_guard lock(mutex);
      auto it = idle.find(origin.key());
      if (it == idle.end()) return nullptr;
      auto now = clock.now();
      // The most recently used first: it is the least likely to have been closed by the server.
      while (!it->second.empty() && !found) {
        auto connection = std::move(it->second.back());
        it->second.pop_back();
        if (now - connection->idle_since >= limits.idle_timeout) {
          expired.push_back(std::move(connection));
        } else {
          found = std::move(connection);
        }
      }
      if (it->second.empty()) idle.erase(it);
    }
    return found;
  }

  void put_idle(std::unique_ptr<Connection> connection) {
    // Destroyed (closed) outside the lock when not kept.
    std::unique_ptr<Connection> dropped;
    std::lock_guard lock(mutex);
    auto& list = idle[connection->key()];
    if (shut_down || list.size() >= limits.max_idle_per_host || connection->buffered() != 0) {
      dropped = std::move(connection);
      if (list.empty()) idle.erase(dropped->key());
      return;
    }
    connection->idle_since = clock.now();
    list.push_back(std::move(connection));
    schedule_sweep_locked();
  }

  // Idle connections are closed by a sweep every idle_timeout, started while any are pooled.
  void schedule_sweep_locked() {
    if (sweep_scheduled || shut_down) return;
    sweep_scheduled = true;
    sweep_timer.expires_after(limits.idle_timeout);
    std::weak_ptr<State> weak = weak_from_this();
    sweep_timer.async_wait([weak](const error_code& ec) {
      if (ec) return;
      if (auto self = weak.lock()) self->sweep();
    });
  }

  void sweep() {
    std::vector<std::unique_ptr<Connection>> expired;
    std::lock_guard lock(mutex);
    sweep_scheduled = false;
    auto now = clock.now();
    for (auto it = idle.begin(); it != idle.end();) {
      auto& list = it->second;
      for (auto& connection : list) {
        if (now - connection->idle_since >= limits.idle_timeout) {
          expired.push_back(std::move(connection));
        }
      }
      std::erase(list, nullptr);
      it = list.empty() ? idle.erase(it) : std::next(it);
    }
    if (!idle.empty()) schedule_sweep_locked();
  }

  void shutdown() {
    std::map<std::string, std::vector<std::unique_ptr<Connection>>> closing;
    std::lock_guard lock(mutex);
    shut_down = true;
    closing.swap(idle);
    sweep_timer.cancel();
    sweep_scheduled = false;
  }

  bool stopping() {
    std::lock_guard lock(mutex);
    return shut_down;
  }

  // --- connecting --------------------------------------------------------------------------

  // Connects on a new strand, which the connection's operations then keep.
  asio::awaitable<std::unique_ptr<Connection>> connect(const Origin& origin,
                                                       UpstreamResult& failure) {
    asio::any_io_executor strand = asio::make_strand(io);
    co_return co_await asio::co_spawn(strand, connect_on_strand(strand, origin, failure),
                                      asio::use_awaitable);
  }

  asio::awaitable<std::unique_ptr<Connection>> connect_on_strand(asio::any_io_executor strand,
                                                                 const Origin& origin,
                                                                 UpstreamResult& failure) {
    std::vector<core::IpAddress> addresses;
    if (auto literal = core::parse_ip(origin.host)) {
      addresses.push_back(*literal);
    } else {
      core::ResolveResult resolved =
          co_await async_resolve_host(resolver, origin.host, asio::use_awaitable);
      if (resolved.addresses.empty()) {
        failure = failed(UpstreamFailure::resolve,
                         "cannot resolve " + origin.host + ": " +
                             (resolved.error.empty() ? "no addresses" : resolved.error));
        co_return nullptr;
      }
      addresses = std::move(resolved.addresses);
    }
    // An address of our own would send the request straight back to this proxy.
    std::erase_if(addresses, [this](const core::IpAddress& address) {
      return std::find(own_addresses.begin(), own_addresses.end(), core::unmapped(address)) !=
             own_addresses.end();
    });
    if (addresses.empty()) {
      failure = failed(UpstreamFailure::own_address,
                       origin.host + " resolves to this appliance; refusing to loop");
      co_return nullptr;
    }

    beast::tcp_stream stream(strand);
    error_code ec;
    std::string errors;
    bool connected = false;
    for (const auto& address : addresses) {
      tcp::endpoint endpoint(address, origin.port);
      stream.expires_after(limits.connect_timeout);
      co_await stream.async_connect(endpoint, asio::redirect_error(asio::use_awaitable, ec));
      if (!ec) {
        connected = true;
        log->debug("connected to {} at {}", origin.key(),
                   core::Endpoint{address, origin.port}.to_string());
        break;
      }
      error_code ignored;
      stream.socket().close(ignored);
      if (!errors.empty()) errors += ", ";
      errors += core::Endpoint{address, origin.port}.to_string() + ": " +
                (ec == beast::error::timeout ? std::string("timed out") : ec.message());
    }
    if (!connected) {
      failure =
          failed(UpstreamFailure::connect, "cannot connect to " + origin.key() + ": " + errors);
      co_return nullptr;
    }
    counters.connections_opened.add();
    stream.socket().set_option(tcp::no_delay(true), ec);
    stream.expires_never();
    if (!origin.tls()) {
      co_return std::make_unique<StreamConnection<beast::tcp_stream>>(origin, std::move(stream));
    }

    TlsStream tls_stream(std::move(stream), tls);
    SSL* ssl_handle = tls_stream.native_handle();
    bool ip_literal = core::parse_ip(origin.host).has_value();
    // RFC 6066 section 3: SNI carries DNS names only, never an address.
    if (!ip_literal && SSL_set_tlsext_host_name(ssl_handle, origin.host.c_str()) != 1) {
      failure = failed(UpstreamFailure::tls, "cannot set SNI: " + certs::take_openssl_errors());
      co_return nullptr;
    }
    int checked =
        ip_literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_handle), origin.host.c_str())
                   : SSL_set1_host(ssl_handle, origin.host.c_str());
    if (checked != 1) {
      failure = failed(UpstreamFailure::tls,
                       "cannot set the name to verify: " + certs::take_openssl_errors());
      co_return nullptr;
    }
    SSL_set_hostflags(ssl_handle, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    beast::get_lowest_layer(tls_stream).expires_after(limits.read_timeout);
    co_await tls_stream.async_handshake(ssl::stream_base::client,
                                        asio::redirect_error(asio::use_awaitable, ec));
    beast::get_lowest_layer(tls_stream).expires_never();
    if (ec == beast::error::timeout) {
      failure =
          failed(UpstreamFailure::timeout, "TLS handshake with " + origin.key() + " timed out");
      co_return nullptr;
    }
    if (ec) {
      std::string reason = ec.message();
      long verify = SSL_get_verify_result(ssl_handle);
      if (verify != X509_V_OK)
        reason += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
      failure =
          failed(UpstreamFailure::tls, "TLS handshake with " + origin.key() + " failed: " + reason);
      co_return nullptr;
    }
    co_return std::make_unique<StreamConnection<TlsStream>>(origin, std::move(tls_stream));
  }

  // --- one request and its response header -------------------------------------------------

  // Sends one request to `origin` and reads the response header; the body is left to the caller.
  // A pooled connection found dead before the response began is replaced by a new one once.
  asio::awaitable<UpstreamResult> exchange(const Origin& origin, http::verb method,
                                           const std::string& target, const std::string& accept,
                                           const std::string& authorization) {
    Request request{method, target, 11};
    request.set(http::field::host, origin.host_field());
    request.set(http::field::user_agent, "pullthrough");
    if (!accept.empty()) request.set(http::field::accept, accept);
    if (!authorization.empty()) request.set(http::field::authorization, authorization);

    for (int attempt = 0;; ++attempt) {
      if (stopping()) co_return failed(UpstreamFailure::shutting_down, "shutting down");
      std::unique_ptr<Connection> connection = attempt == 0 ? take_idle(origin) : nullptr;
      bool reused = connection != nullptr;
      if (!connection) {
        UpstreamResult failure;
        connection = co_await connect(origin, failure);
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
        co_return failed(
            ec == beast::error::timeout ? UpstreamFailure::timeout : UpstreamFailure::connect,
            "cannot send to " + origin.key() + ": " + ec.message());
      }

      auto parser = std::make_unique<Parser>();
      parser->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(
          limits.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
      // Blobs are GiBs: the caller bounds what it keeps. Not boost::none, which Beast 1.74
      // compares as smaller than any Content-Length (every sized body would exceed it).
      parser->body_limit(std::numeric_limits<std::uint64_t>::max());
      if (method == http::verb::head) parser->skip(true);
      co_await connection->read_header(*parser, limits.read_timeout, ec);
      if (ec) {
        if (reused && !parser->got_some() && is_disconnect(ec)) {
          log->debug("pooled connection to {} was closed ({}); retrying", origin.key(),
                     ec.message());
          continue;
        }
        if (ec == beast::error::timeout) {
          co_return failed(UpstreamFailure::timeout,
                           "no response from " + origin.key() + " in time");
        }
        // Malformed, oversized, or cut short before the header ended: the server's HTTP is at
        // fault. Anything else lost the connection itself.
        bool http_error =
            &ec.category() == &http::make_error_code(http::error::need_more).category();
        co_return failed(http_error ? UpstreamFailure::protocol : UpstreamFailure::connect,
                         "no usable response from " + origin.key() + ": " + ec.message());
      }

      UpstreamResult result;
      result.response.emplace();
      UpstreamResponse& response = *result.response;
      response.header = static_cast<const http::response_header<>&>(parser->get());
      response.url = origin.url() + std::string(without_query(target));
      if (parser->is_done()) {
        if (parser->get().keep_alive()) put_idle(std::move(connection));
      } else {
        response.body =
            std::make_unique<Body>(shared_from_this(), std::move(connection), std::move(parser));
      }
      co_return result;
    }
  }

  // --- authentication ----------------------------------------------------------------------

  std::string basic_credentials() const {
    return "Basic " + base64(registry.credentials->username + ":" + password);
  }

  // What to send with a request for `repository` before any 401: a cached token the repository
  // needed before, or the credentials when the registry asked for Basic.
  std::string preemptive_authorization(const std::string& repository) {
    std::lock_guard lock(mutex);
    auto known = repository_tokens.find(repository);
    if (known != repository_tokens.end()) {
      auto token = tokens.find(known->second.text());
      if (token != tokens.end() && clock.now() < token->second.expires) {
        return "Bearer " + token->second.value;
      }
    }
    if (basic_seen && registry.credentials) return basic_credentials();
    return {};
  }

  // The challenge of a 401 that can be answered: a Bearer one, else a Basic one when there are
  // credentials that were not just refused.
  std::optional<Challenge> usable_challenge(const http::response_header<>& header,
                                            const std::string& sent_authorization) const {
    std::optional<Challenge> bearer;
    std::optional<Challenge> basic;
    auto [first, last] = header.equal_range(http::field::www_authenticate);
    for (auto field = first; field != last; ++field) {
      auto challenges = parse_challenges(field->value());
      if (!challenges) continue;
      for (auto& challenge : *challenges) {
        if (challenge.scheme == "bearer" && !bearer) {
          bearer = std::move(challenge);
        } else if (challenge.scheme == "basic" && !basic) {
          basic = std::move(challenge);
        }
      }
    }
    if (bearer) return bearer;
    if (basic && registry.credentials && basic_credentials() != sent_authorization) return basic;
    return std::nullopt;
  }

  asio::awaitable<ChallengeAnswer> answer_challenge(const Challenge& challenge,
                                                    const std::string& repository,
                                                    const std::string& sent_authorization) {
    if (challenge.scheme == "bearer") {
      co_return co_await answer_bearer(challenge, repository, sent_authorization);
    }
    {
      std::lock_guard lock(mutex);
      basic_seen = true;
    }
    log->debug("registry {}: answering a Basic challenge with the credentials", registry.host);
    ChallengeAnswer answer;
    answer.authorization = basic_credentials();
    co_return answer;
  }

  asio::awaitable<ChallengeAnswer> answer_bearer(const Challenge& bearer,
                                                 const std::string& repository,
                                                 const std::string& sent_authorization) {
    ChallengeAnswer answer;
    auto param = [&](const char* name) {
      auto it = bearer.params.find(name);
      return it == bearer.params.end() ? std::string() : it->second;
    };
    TokenKey key{param("realm"), param("service"), param("scope")};
    std::optional<std::string> scope_override;
    if (key.scope.empty() && !repository.empty()) {
      key.scope = "repository:" + repository + ":pull";
      scope_override = key.scope;
    }
    auto auth_failure = [&](const std::string& why) {
      ChallengeAnswer out;
      out.failure = failed(UpstreamFailure::auth, "registry " + registry.host + ": " + why);
      return out;
    };

    {
      std::lock_guard lock(mutex);
      make_room(repository_tokens, kMaxRememberedRepositories);
      repository_tokens.insert_or_assign(repository, key);
      // Another request may have fetched a token since ours was refused (or sent none).
      auto cached = tokens.find(key.text());
      if (cached != tokens.end() && clock.now() < cached->second.expires &&
          "Bearer " + cached->second.value != sent_authorization) {
        answer.authorization = "Bearer " + cached->second.value;
        co_return answer;
      }
    }

    auto url = token_request_url(bearer, scope_override);
    if (!url) co_return auth_failure("unusable Bearer challenge (realm missing or not a URL)");
    auto realm = parse_absolute_url(*url);
    if (!realm) co_return auth_failure("unusable token realm URL");

    std::string authorization;
    if (registry.credentials) {
      // A password goes in clear text over http only when the registry itself is plain http.
      if (realm->origin.tls() || !registry_origin.tls()) {
        authorization = basic_credentials();
      } else {
        co_return auth_failure("refusing to send credentials to a plain http token realm");
      }
    }
    log->debug("registry {}: fetching a token for scope '{}' from {}", registry.host, key.scope,
               realm->origin.url() + std::string(without_query(realm->target)));
    const std::string no_accept;
    UpstreamResult fetched =
        co_await exchange(realm->origin, http::verb::get, realm->target, no_accept, authorization);
    if (!fetched.response) co_return auth_failure("token endpoint: " + fetched.error);
    auto& response = *fetched.response;
    if (response.header.result() != http::status::ok) {
      co_return auth_failure("token endpoint answered " +
                             std::to_string(response.header.result_int()));
    }
    if (!response.body) co_return auth_failure("token endpoint sent no body");
    WholeBody body = co_await read_whole_body(*response.body, limits.max_token_body_bytes);
    if (body.error) co_return auth_failure("token endpoint body: " + body.error.message());
    auto token = parse_token_response(body.bytes);
    if (!token) co_return auth_failure("token endpoint sent no usable token");
    counters.tokens_fetched.add();

    auto lifetime = std::max<core::Clock::TimePoint::duration>(
        token->expires_in - kTokenExpiryMargin, std::chrono::seconds(0));
    {
      std::lock_guard lock(mutex);
      auto now = clock.now();
      if (tokens.size() >= kMaxCachedTokens) {
        std::erase_if(tokens, [now](const auto& entry) { return entry.second.expires <= now; });
        make_room(tokens, kMaxCachedTokens);
      }
      tokens.insert_or_assign(key.text(), CachedToken{token->value, now + lifetime});
    }
    answer.authorization = "Bearer " + token->value;
    co_return answer;
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
      co_return failed(UpstreamFailure::protocol, "only GET and HEAD are sent upstream");
    }
    Origin origin = registry_origin;
    std::string target = request.target;
    std::string authorization = preemptive_authorization(request.repository);
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
      if (status == 401 && own && !challenge_answered) {
        auto challenge = usable_challenge(response.header, authorization);
        if (!challenge) co_return result;
        // Read the 401's body first, so that its connection can serve the token request.
        co_await drain(response);
        ChallengeAnswer answer =
            co_await answer_challenge(*challenge, request.repository, authorization);
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
          co_return failed(UpstreamFailure::protocol, "more than " +
                                                          std::to_string(limits.max_redirects) +
                                                          " redirects from " + response.url);
        }
        auto next = resolve_location(origin, target, location_field->value());
        if (!next) {
          co_return failed(UpstreamFailure::protocol,
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
      result =
          failed(UpstreamFailure::protocol, std::string("upstream request failed: ") + e.what());
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

  // --- the body ----------------------------------------------------------------------------

  class Body final : public UpstreamBody {
   public:
    Body(std::shared_ptr<State> state, std::unique_ptr<Connection> connection,
         std::unique_ptr<Parser> parser)
        : state_(std::move(state)),
          connection_(std::move(connection)),
          parser_(std::move(parser)),
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
          if (parser_->get().keep_alive()) state_->put_idle(std::move(connection_));
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
    std::unique_ptr<Parser> parser_;
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

UpstreamClient::~UpstreamClient() { state_->shutdown(); }

asio::awaitable<UpstreamResult> UpstreamClient::send(UpstreamRequest request) {
  return State::send(state_, std::move(request));
}

void UpstreamClient::shutdown() { state_->shutdown(); }

const UpstreamCounters& UpstreamClient::counters() const { return state_->counters; }

}  // namespace pullthrough::proxy
