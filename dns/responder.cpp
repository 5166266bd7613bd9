#include "dns/responder.hpp"

#include <algorithm>
#include <array>
#include <deque>
#include <list>
#include <mutex>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "core/gate.hpp"
#include "core/logging.hpp"
#include "core/spawn.hpp"
#include "dns/answers.hpp"
#include "dns/rate_limiter.hpp"
#include "dns/ttl_cache.hpp"
#include "dns/wire.hpp"

namespace pullthrough::dns {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;
using asio::ip::udp;
using boost::system::error_code;
using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

constexpr std::size_t kUdpBuffer = 4096;  // larger datagrams are no queries of ours
constexpr std::size_t kMaxTcpConnections = 1024;
constexpr std::size_t kMaxTcpInFlight = 64;  // per connection (RFC 7766 pipelining)
constexpr auto kTcpIdleTimeout = std::chrono::seconds(10);
constexpr auto kTcpReadTimeout = std::chrono::seconds(10);
// RFC 8767 section 4: a stale answer carries a short TTL so clients ask again soon.
constexpr std::uint32_t kStaleTtl = 30;

core::Endpoint to_endpoint(const udp::endpoint& e) {
  return core::Endpoint{core::unmapped(e.address()), e.port()};
}

void count_type(DnsCounters& c, std::uint16_t type) {
  switch (type) {
    case rrtype::kA:
      c.queries_a.add();
      break;
    case rrtype::kAaaa:
      c.queries_aaaa.add();
      break;
    case rrtype::kHttps:
    case 64:
      c.queries_https.add();
      break;
    case rrtype::kAny:
      c.queries_any.add();
      break;
    default:
      c.queries_other.add();
  }
}

void count_malformed(DnsCounters& c, WireError error) {
  c.malformed.add();
  switch (error) {
    case WireError::short_header:
      c.malformed_short_header.add();
      break;
    case WireError::bad_counts:
      c.malformed_bad_counts.add();
      break;
    case WireError::bad_label:
      c.malformed_bad_label.add();
      break;
    case WireError::name_too_long:
      c.malformed_name_too_long.add();
      break;
    case WireError::bad_pointer:
      c.malformed_bad_pointer.add();
      break;
    case WireError::compression_loop:
      c.malformed_compression_loop.add();
      break;
    case WireError::truncated:
      c.malformed_truncated.add();
      break;
    case WireError::trailing_garbage:
      c.malformed_trailing_garbage.add();
      break;
    case WireError::bad_opt:
      c.malformed_bad_opt.add();
      break;
    case WireError::none:
      break;
  }
}

}  // namespace

struct Responder::State : std::enable_shared_from_this<Responder::State> {
  // One TCP connection: answers may complete in any order (RFC 7766 section 6.2.1.1) and are
  // written one after another from a queue on the connection's strand.
  struct TcpConnection {
    beast::tcp_stream stream;
    std::deque<std::vector<std::uint8_t>> queue;
    bool writing = false;
    std::size_t in_flight = 0;
    explicit TcpConnection(tcp::socket socket) : stream(std::move(socket)) {}
  };

  asio::io_context& io;
  const config::Config& config;
  HealthGate& health;
  Upstream& upstream;
  std::shared_ptr<spdlog::logger> log = core::logger("dns");
  std::unordered_set<std::string> intercepted;
  std::uint32_t answer_ttl;
  TtlCache<UpstreamAnswer> cache;
  RateLimiter limiter;
  DnsCounters counters;
  std::atomic<std::size_t> rotation{0};

  core::Gate gate;
  core::ListenerCounters tcp_counters;
  std::unique_ptr<core::TcpListener> tcp_listener;
  std::vector<std::unique_ptr<udp::socket>> udp_sockets;
  std::vector<core::Endpoint> udp_bound;
  std::mutex tcp_mutex;
  std::list<std::shared_ptr<TcpConnection>> tcp_connections;

  State(asio::io_context& io_context, const config::Config& cfg, HealthGate& health_gate,
        Upstream& upstream_resolver, const core::Clock& clock)
      : io(io_context),
        config(cfg),
        health(health_gate),
        upstream(upstream_resolver),
        answer_ttl(static_cast<std::uint32_t>(
            std::chrono::duration_cast<std::chrono::seconds>(cfg.dns.answer_ttl).count())),
        cache(cfg.dns.cache.max_entries, cfg.dns.cache.serve_stale, clock),
        limiter(cfg.dns.per_client_qps, clock) {
    for (const auto& registry : cfg.registries) {
      intercepted.insert(registry.host);
      intercepted.insert(registry.aliases.begin(), registry.aliases.end());
    }
  }

  bool is_intercepted(std::string_view name) const {
    return intercepted.count(std::string(name)) != 0;
  }

  // ---- the policy ----

  void handle(std::span<const std::uint8_t> packet, const core::Endpoint& client, bool over_tcp,
              Send send) {
    (over_tcp ? counters.queries_tcp : counters.queries_udp).add();
    auto checked = check_message(packet);
    if (checked.error != WireError::none) {
      count_malformed(counters, checked.error);
      return;
    }
    const auto& summary = checked.summary;
    if ((summary.flags & 0x8000) != 0) {  // a response: answering it could start a loop
      counters.responses_dropped.add();
      return;
    }
    Query query{packet, summary};
    auto max_size = max_answer_size(summary, over_tcp);
    if (!config.dns.allow.empty() && !core::contains_any(config.dns.allow, client.address)) {
      counters.refused.add();
      send(error_answer(query, rcode::kRefused, max_size).wire);
      return;
    }
    if (!over_tcp && !limiter.allow(client.address)) {
      // TC=1 with no records is never larger than the query: no amplification, and a real client
      // retries over TCP, which costs it a handshake.
      counters.rate_limited.add();
      auto built = error_answer(query, rcode::kNoError, max_size);
      if (built.wire.size() >= 3) built.wire[2] |= 0x02;  // TC
      send(std::move(built.wire));
      return;
    }
    if (((summary.flags >> 11) & 0xF) != 0) {
      counters.not_implemented.add();
      send(error_answer(query, rcode::kNotImp, max_size).wire);
      return;
    }
    if (summary.qdcount != 1) {
      counters.format_errors.add();
      send(error_answer(query, rcode::kFormErr, max_size).wire);
      return;
    }
    count_type(counters, summary.qtype);
    bool intercepted_name = summary.qclass == 1 && is_intercepted(summary.qname);
    auto healthy = health.healthy();
    if (intercepted_name && !healthy->empty()) {
      counters.rewritten.add();
      auto built = synthesize(query, *healthy, answer_ttl, rotation.fetch_add(1), max_size);
      if (built.truncated) counters.truncated.add();
      send(std::move(built.wire));
      return;
    }
    if (intercepted_name) counters.intercepted_forwarded.add();
    answer_forwarded(query, intercepted_name, std::move(healthy), max_size, std::move(send));
  }

  RelayOptions relay_options(bool intercepted_name,
                             const std::shared_ptr<const HealthGate::Addresses>& healthy,
                             std::uint32_t age) {
    RelayOptions options;
    options.age_seconds = age;
    // While the gate is closed an intercepted name is the real registry's: keep its TTL short so
    // clients come back to the cache soon after it recovers.
    if (intercepted_name) options.ttl_cap = answer_ttl;
    options.intercepted = [this](std::string_view name) { return is_intercepted(name); };
    options.rewrite_to = healthy->empty() ? nullptr : healthy.get();
    options.answer_ttl = answer_ttl;
    options.rotation = rotation.fetch_add(1);
    return options;
  }

  void send_relayed(const Query& query, const UpstreamAnswer& answer, const RelayOptions& options,
                    std::size_t max_size, const Send& send) {
    auto built = relay(query, answer, options, max_size);
    if (built.rewritten) counters.cname_rewritten.add();
    if (built.truncated) counters.truncated.add();
    send(std::move(built.wire));
  }

  void answer_forwarded(const Query& query, bool intercepted_name,
                        std::shared_ptr<const HealthGate::Addresses> healthy, std::size_t max_size,
                        Send send) {
    const auto& summary = query.summary;
    CacheKey key{summary.qname, summary.qtype, summary.qclass, summary.dnssec_ok};
    if (auto hit = cache.lookup(key, false)) {
      counters.cache_hits.add();
      auto age = static_cast<std::uint32_t>(
          std::chrono::duration_cast<std::chrono::seconds>(hit->age).count());
      send_relayed(query, *hit->value, relay_options(intercepted_name, healthy, age), max_size,
                   send);
      return;
    }
    counters.forwarded.add();
    // The query's bytes must outlive the asynchronous forward.
    auto bytes = std::make_shared<std::vector<std::uint8_t>>(query.wire.begin(), query.wire.end());
    auto self = shared_from_this();
    core::GateHolder hold(gate);
    auto holder = std::make_shared<core::GateHolder>(std::move(hold));
    upstream.forward(*bytes, [self, bytes, summary, key, intercepted_name, healthy, max_size,
                              send = std::move(send), holder](ForwardResult result) {
      Query again{*bytes, summary};
      self->on_upstream(again, key, intercepted_name, healthy, max_size, send, std::move(result));
    });
  }

  void on_upstream(const Query& query, const CacheKey& key, bool intercepted_name,
                   const std::shared_ptr<const HealthGate::Addresses>& healthy,
                   std::size_t max_size, const Send& send, ForwardResult result) {
    if (result.status == ForwardResult::Status::answer &&
        check_message(result.answer).error == WireError::none) {
      if (auto parsed = parse_upstream(result.answer)) {
        if (parsed->cache_ttl) {
          auto ttl = *parsed->cache_ttl;
          if (intercepted_name)
            ttl = std::min<std::chrono::seconds>(ttl, std::chrono::seconds(answer_ttl));
          cache.insert(key, parsed->answer, ttl);
        }
        if (parsed->rcode == rcode::kServFail) counters.servfail_sent.add();
        send_relayed(query, *parsed->answer, relay_options(intercepted_name, healthy, 0), max_size,
                     send);
        return;
      }
    }
    counters.upstream_errors.add();
    if (result.status != ForwardResult::Status::answer) {
      log->debug("upstream failed for {}: {}", query.summary.qname, result.error);
    }
    if (auto stale = cache.lookup(key, true)) {
      counters.stale_served.add();
      auto options = relay_options(intercepted_name, healthy, 0);
      options.ttl_cap = std::min(options.ttl_cap.value_or(kStaleTtl), kStaleTtl);
      send_relayed(query, *stale->value, options, max_size, send);
      return;
    }
    counters.servfail_sent.add();
    send(error_answer(query, rcode::kServFail, max_size).wire);
  }

  // ---- UDP ----

  void bind_udp(const core::Endpoint& endpoint, unsigned count) {
    std::uint16_t port = endpoint.port;
    for (unsigned i = 0; i < count; ++i) {
      auto socket = std::make_unique<udp::socket>(asio::make_strand(io));
      udp::endpoint where(endpoint.address, port);
      error_code ec;
      socket->open(where.protocol(), ec);
      // One socket per thread on the same address: the kernel spreads datagrams across them.
      if (!ec) socket->set_option(ReusePort(true), ec);
      if (!ec && endpoint.address.is_v6() && endpoint.address.is_unspecified()) {
        socket->set_option(asio::ip::v6_only(core::ipv6_only(endpoint, config.dns.listen)), ec);
      }
      if (!ec) socket->bind(where, ec);
      if (!ec) socket->non_blocking(true, ec);
      if (ec) throw std::system_error(ec, "dns: cannot listen on udp " + endpoint.to_string());
      auto bound = to_endpoint(socket->local_endpoint());
      port = bound.port;  // a configured port 0: every socket shares the first one's port
      if (i == 0) udp_bound.push_back(bound);
      udp_sockets.push_back(std::move(socket));
    }
  }

  static asio::awaitable<void> udp_loop(std::shared_ptr<State> self, udp::socket& socket,
                                        [[maybe_unused]] core::GateHolder hold) {
    std::array<std::uint8_t, kUdpBuffer> buffer{};
    udp::endpoint from;
    error_code ec;
    for (;;) {
      std::size_t n = co_await socket.async_receive_from(
          asio::buffer(buffer), from, asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !socket.is_open()) co_return;
      if (ec) continue;  // ICMP errors surfacing as ECONNREFUSED and the like
      auto client = to_endpoint(from);
      auto executor = socket.get_executor();
      self->handle(std::span<const std::uint8_t>(buffer.data(), n), client, false,
                   [self, &socket, from, executor](std::vector<std::uint8_t> answer) {
                     asio::dispatch(executor, [self, &socket, from, answer = std::move(answer)] {
                       error_code send_ec;
                       if (socket.is_open()) socket.send_to(asio::buffer(answer), from, 0, send_ec);
                       if (send_ec || !socket.is_open()) self->counters.send_errors.add();
                     });
                   });
    }
  }

  // ---- TCP ----

  void on_tcp_connection(core::AcceptedConnection accepted) {
    auto connection = std::make_shared<TcpConnection>(std::move(accepted.socket));
    auto executor = connection->stream.get_executor();
    core::spawn_logged(
        executor,
        tcp_session(shared_from_this(), connection, accepted.peer, std::move(accepted.hold)), log,
        "dns tcp connection dropped");
  }

  static void queue_answer(const std::shared_ptr<TcpConnection>& connection,
                           std::vector<std::uint8_t> answer) {
    if (answer.size() > 65535) return;
    std::vector<std::uint8_t> framed;
    framed.reserve(answer.size() + 2);
    framed.push_back(static_cast<std::uint8_t>(answer.size() >> 8));
    framed.push_back(static_cast<std::uint8_t>(answer.size() & 0xFF));
    framed.insert(framed.end(), answer.begin(), answer.end());
    connection->queue.push_back(std::move(framed));
    write_next(connection);
  }

  static void write_next(const std::shared_ptr<TcpConnection>& connection) {
    if (connection->writing || connection->queue.empty()) return;
    connection->writing = true;
    connection->stream.expires_after(kTcpReadTimeout);
    asio::async_write(connection->stream, asio::buffer(connection->queue.front()),
                      [connection](const error_code& ec, std::size_t) {
                        connection->writing = false;
                        connection->queue.pop_front();
                        if (ec) {
                          connection->queue.clear();
                          connection->stream.close();
                          return;
                        }
                        write_next(connection);
                      });
  }

  static asio::awaitable<void> tcp_session(std::shared_ptr<State> self,
                                           std::shared_ptr<TcpConnection> connection,
                                           core::Endpoint peer,
                                           [[maybe_unused]] core::GateHolder hold) {
    std::list<std::shared_ptr<TcpConnection>>::iterator registered;
    {
      std::lock_guard lock(self->tcp_mutex);
      registered = self->tcp_connections.insert(self->tcp_connections.end(), connection);
    }
    auto& stream = connection->stream;
    auto executor = stream.get_executor();
    error_code ec;
    std::vector<std::uint8_t> message;
    for (;;) {
      std::array<std::uint8_t, 2> length_bytes{};
      stream.expires_after(kTcpIdleTimeout);
      co_await asio::async_read(stream, asio::buffer(length_bytes),
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      std::size_t length = (std::size_t{length_bytes[0]} << 8) | length_bytes[1];
      if (length == 0) break;
      message.resize(length);
      stream.expires_after(kTcpReadTimeout);
      co_await asio::async_read(stream, asio::buffer(message),
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      if (connection->in_flight >= kMaxTcpInFlight) break;  // a client that never reads answers
      ++connection->in_flight;
      self->handle(message, peer, true, [connection, executor](std::vector<std::uint8_t> answer) {
        asio::dispatch(executor, [connection, answer = std::move(answer)]() mutable {
          --connection->in_flight;
          queue_answer(connection, std::move(answer));
        });
      });
    }
    {
      std::lock_guard lock(self->tcp_mutex);
      self->tcp_connections.erase(registered);
    }
    // Answers still in flight are written if the client keeps reading; the socket closes when the
    // last handler lets go of the connection.
  }

  void stop(std::function<void()> drained) {
    for (auto& socket : udp_sockets) {
      asio::post(socket->get_executor(), [s = socket.get()] {
        error_code ignored;
        s->close(ignored);
      });
    }
    tcp_listener->close();
    {
      std::lock_guard lock(tcp_mutex);
      for (auto& connection : tcp_connections) {
        asio::post(connection->stream.get_executor(),
                   [connection] { connection->stream.cancel(); });
      }
    }
    gate.close([this, drained = std::move(drained)] {
      upstream.shutdown();
      drained();
    });
  }
};

Responder::Responder(asio::io_context& io, const config::Config& config, HealthGate& gate,
                     Upstream& upstream, const core::Clock& clock)
    : state_(std::make_shared<State>(io, config, gate, upstream, clock)) {
  std::weak_ptr<State> weak = state_;
  state_->tcp_listener = std::make_unique<core::TcpListener>(
      io, "dns", config.dns.listen, std::vector<core::Cidr>{}, kMaxTcpConnections, state_->gate,
      state_->tcp_counters, [weak](core::AcceptedConnection connection) {
        if (auto state = weak.lock()) state->on_tcp_connection(std::move(connection));
      });
}

Responder::~Responder() = default;

void Responder::start() {
  unsigned per_address = std::max(1U, std::thread::hardware_concurrency());
  for (const auto& endpoint : state_->config.dns.listen) state_->bind_udp(endpoint, per_address);
  state_->tcp_listener->bind();
  for (auto& socket : state_->udp_sockets) {
    core::spawn_logged(socket->get_executor(),
                       State::udp_loop(state_, *socket, core::GateHolder(state_->gate)),
                       state_->log, "dns udp loop failed");
  }
  for (const auto& endpoint : state_->udp_bound) {
    state_->log->info("listening on udp {} ({} sockets)", endpoint.to_string(), per_address);
  }
  state_->tcp_listener->start("tcp", state_);
}

void Responder::stop(std::function<void()> drained) { state_->stop(std::move(drained)); }

void Responder::handle(std::span<const std::uint8_t> packet, const core::Endpoint& client,
                       bool over_tcp, Send send) {
  state_->handle(packet, client, over_tcp, std::move(send));
}

const DnsCounters& Responder::counters() const { return state_->counters; }

std::vector<core::Endpoint> Responder::udp_endpoints() const { return state_->udp_bound; }

std::vector<core::Endpoint> Responder::tcp_endpoints() const {
  return state_->tcp_listener->bound();
}

}  // namespace pullthrough::dns
