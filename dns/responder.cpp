#include "dns/responder.hpp"

#include "core/asio.hpp"

#include <algorithm>
#include <array>
#include <deque>
#include <list>
#include <mutex>
#include <thread>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <linux/filter.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>

#include "core/gate.hpp"
#include "core/logging.hpp"
#include "core/spawn.hpp"
#include "dns/answers.hpp"
#include "dns/rate_limiter.hpp"
#include "dns/ttl_cache.hpp"
#include "dns/wire.hpp"
#include "dns/wire_format.hpp"

namespace pullthrough::dns {
namespace {

using asio::ip::tcp;
using asio::ip::udp;
using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

constexpr std::size_t kUdpBuffer = 4096;  // larger datagrams are no queries of ours
constexpr std::size_t kUdpBatch = 32;     // datagrams per recvmmsg / sendmmsg
constexpr int kUdpRounds = 8;             // batches per wake-up before stop() gets a turn
// RFC 8767 section 4: a stale answer carries a short TTL so clients ask again soon.
constexpr std::uint32_t kStaleTtl = 30;

// Lets the intercepted-name set be searched with a string_view, without building a string.
struct NameHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view name) const {
    return std::hash<std::string_view>{}(name);
  }
};

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
    case rrtype::kSvcb:
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

// What answer() did with a packet: answered it at once (the answer is in `out`), took the Send
// that defer() made to answer it later, or dropped it.
enum class Outcome { answered, deferred, dropped };
using Defer = std::function<Responder::Send()>;

struct Responder::State : std::enable_shared_from_this<Responder::State> {
  // One TCP connection: answers may complete in any order (RFC 7766 section 6.2.1.1) and are
  // written one after another from a queue on the connection's strand.
  struct TcpConnection {
    beast::tcp_stream stream;
    std::deque<std::vector<std::uint8_t>> queue;
    bool writing = false;
    std::size_t in_flight = 0;
    std::chrono::milliseconds read_timeout;
    TcpConnection(tcp::socket socket, std::chrono::milliseconds timeout)
        : stream(std::move(socket)), read_timeout(timeout) {}
  };

  // One socket of a UDP listener, with its own thread and event loop. SO_REUSEPORT spreads the
  // datagrams sent to one address over its sockets, so the hot path takes no lock shared with
  // another thread and wakes no other thread, and each wake-up reads and answers a whole batch
  // with one recvmmsg and one sendmmsg.
  struct UdpShard {
    asio::io_context io{1};
    udp::socket socket{io};
    std::thread thread;
    unsigned cpu = 0;  // the CPU this socket's datagrams come from, and its thread runs on
    // Batch buffers, used only by this shard's thread.
    std::array<std::array<std::uint8_t, kUdpBuffer>, kUdpBatch> in{};
    std::array<sockaddr_storage, kUdpBatch> from{};
    std::array<iovec, kUdpBatch> in_iov{};
    std::array<mmsghdr, kUdpBatch> in_msg{};
    std::array<std::vector<std::uint8_t>, kUdpBatch> out{};
    std::array<iovec, kUdpBatch> out_iov{};
    std::array<mmsghdr, kUdpBatch> out_msg{};
  };

  asio::io_context& io;
  const config::Config& config;
  health::HealthGate& health;
  Upstream& upstream;
  std::shared_ptr<spdlog::logger> log = core::logger("dns");
  std::unordered_set<std::string, NameHash, std::equal_to<>> intercepted;
  std::uint32_t answer_ttl;
  TtlCache<UpstreamAnswer> cache;
  RateLimiter limiter;
  DnsCounters counters;

  TcpLimits tcp_limits;
  core::Gate gate;
  core::ListenerCounters tcp_counters;
  std::unique_ptr<core::TcpListener> tcp_listener;
  std::vector<std::unique_ptr<UdpShard>> udp_shards;
  std::vector<core::Endpoint> udp_bound;
  std::mutex tcp_mutex;
  std::list<std::shared_ptr<TcpConnection>> tcp_connections;

  State(asio::io_context& io_context, const config::Config& cfg, health::HealthGate& health_gate,
        Upstream& upstream_resolver, const core::Clock& clock, TcpLimits tcp)
      : io(io_context),
        config(cfg),
        health(health_gate),
        upstream(upstream_resolver),
        answer_ttl(static_cast<std::uint32_t>(
            std::chrono::duration_cast<std::chrono::seconds>(cfg.dns.answer_ttl).count())),
        cache(cfg.dns.cache.max_entries, cfg.dns.cache.serve_stale, clock),
        limiter(cfg.dns.per_client_qps, clock),
        tcp_limits(tcp) {
    for (const auto& registry : cfg.registries) {
      intercepted.insert(registry.host);
      intercepted.insert(registry.aliases.begin(), registry.aliases.end());
    }
  }

  bool is_intercepted(std::string_view name) const {
    return intercepted.find(name) != intercepted.end();
  }

  // ---- the policy ----

  // The healthy cache hosts, as this thread last saw them: re-read from the gate only when its
  // generation moved, so that answering does not touch a lock or a reference count other threads
  // also write. Valid until the next call on the same thread.
  const std::shared_ptr<const health::HealthGate::Addresses>& healthy_now() {
    struct Seen {
      std::uint64_t generation = 0;
      std::shared_ptr<const health::HealthGate::Addresses> addresses;
    };
    thread_local Seen seen;
    auto generation = health.generation();
    if (generation != seen.generation || !seen.addresses) {
      seen.addresses = health.healthy();
      seen.generation = generation;
    }
    return seen.addresses;
  }

  // Rotation of the address list, per thread: no cache line shared between threads.
  static std::size_t next_rotation() {
    thread_local std::size_t rotation = 0;
    return rotation++;
  }

  Outcome answer(std::span<const std::uint8_t> packet, const core::Endpoint& client, bool over_tcp,
                 std::vector<std::uint8_t>& out, const Defer& defer) {
    (over_tcp ? counters.queries_tcp : counters.queries_udp).add();
    auto checked = check_message(packet);
    if (checked.error != WireError::none) {
      count_malformed(counters, checked.error);
      return Outcome::dropped;
    }
    const auto& summary = checked.summary;
    // A response: answering it could start a loop.
    if ((summary.flags & wire_format::kQr) != 0) {
      counters.responses_dropped.add();
      return Outcome::dropped;
    }
    Query query{packet, summary};
    auto max_size = max_answer_size(summary, over_tcp);
    if (!config.dns.allow.empty() && !core::contains_any(config.dns.allow, client.address)) {
      counters.refused.add();
      out = error_answer(query, rcode::kRefused, max_size).wire;
      return Outcome::answered;
    }
    if (!over_tcp && !limiter.allow(client.address)) {
      // TC=1 with no records is never larger than the query: no amplification, and a real client
      // retries over TCP, which costs it a handshake.
      counters.rate_limited.add();
      out = error_answer(query, rcode::kNoError, max_size).wire;
      if (out.size() >= wire_format::kHeaderSize) {
        wire_format::put_u16(&out[2], wire_format::read_u16(&out[2]) | wire_format::kTc);
      }
      return Outcome::answered;
    }
    if (wire_format::opcode(summary.flags) != wire_format::kOpcodeQuery) {
      counters.not_implemented.add();
      out = error_answer(query, rcode::kNotImp, max_size).wire;
      return Outcome::answered;
    }
    if (summary.qdcount != 1) {
      counters.format_errors.add();
      out = error_answer(query, rcode::kFormErr, max_size).wire;
      return Outcome::answered;
    }
    count_type(counters, summary.qtype);
    bool intercepted_name = summary.qclass == rrclass::kIn && is_intercepted(summary.qname);
    const auto& healthy = healthy_now();
    if (intercepted_name && !healthy->empty()) {
      counters.rewritten.add();
      auto built = synthesize(query, *healthy, answer_ttl, next_rotation(), max_size);
      if (built.truncated) counters.truncated.add();
      out = std::move(built.wire);
      return Outcome::answered;
    }
    if (intercepted_name) counters.intercepted_forwarded.add();
    return answer_forwarded(query, intercepted_name, healthy, max_size, out, defer);
  }

  RelayOptions relay_options(bool intercepted_name, const health::HealthGate::Addresses& healthy,
                             std::uint32_t age) {
    RelayOptions options;
    options.age_seconds = age;
    // While the gate is closed an intercepted name is the real registry's: keep its TTL short so
    // clients come back to the cache soon after it recovers.
    if (intercepted_name) options.ttl_cap = answer_ttl;
    options.intercepted = [this](std::string_view name) { return is_intercepted(name); };
    options.rewrite_to = healthy.empty() ? nullptr : &healthy;
    options.answer_ttl = answer_ttl;
    options.rotation = next_rotation();
    return options;
  }

  std::vector<std::uint8_t> relayed(const Query& query, const UpstreamAnswer& answer,
                                    const RelayOptions& options, std::size_t max_size) {
    auto built = relay(query, answer, options, max_size);
    if (built.rewritten) counters.cname_rewritten.add();
    if (built.truncated) counters.truncated.add();
    return std::move(built.wire);
  }

  Outcome answer_forwarded(const Query& query, bool intercepted_name,
                           const std::shared_ptr<const health::HealthGate::Addresses>& healthy,
                           std::size_t max_size, std::vector<std::uint8_t>& out,
                           const Defer& defer) {
    const auto& summary = query.summary;
    CacheKeyView view{summary.qname, summary.qtype, summary.qclass, summary.dnssec_ok};
    if (auto hit = cache.lookup(view, false)) {
      counters.cache_hits.add();
      auto age = static_cast<std::uint32_t>(
          std::chrono::duration_cast<std::chrono::seconds>(hit->age).count());
      out = relayed(query, *hit->value, relay_options(intercepted_name, *healthy, age), max_size);
      return Outcome::answered;
    }
    counters.forwarded.add();
    CacheKey key{summary.qname, summary.qtype, summary.qclass, summary.dnssec_ok};
    // The query's bytes must outlive the asynchronous forward.
    auto bytes = std::make_shared<std::vector<std::uint8_t>>(query.wire.begin(), query.wire.end());
    auto self = shared_from_this();
    auto holder = std::make_shared<core::GateHolder>(gate);
    upstream.forward(*bytes, [self, bytes, summary, key, intercepted_name, healthy, max_size,
                              send = defer(), holder](ForwardResult result) {
      Query again{*bytes, summary};
      send(self->on_upstream(again, key, intercepted_name, *healthy, max_size, std::move(result)));
    });
    return Outcome::deferred;
  }

  std::vector<std::uint8_t> on_upstream(const Query& query, const CacheKey& key,
                                        bool intercepted_name,
                                        const health::HealthGate::Addresses& healthy,
                                        std::size_t max_size, ForwardResult result) {
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
        return relayed(query, *parsed->answer, relay_options(intercepted_name, healthy, 0),
                       max_size);
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
      return relayed(query, *stale->value, options, max_size);
    }
    counters.servfail_sent.add();
    return error_answer(query, rcode::kServFail, max_size).wire;
  }

  // ---- UDP ----

  struct Sender {
    State* state;
    UdpShard* shard;
    const sockaddr_storage* from;
    socklen_t length;
  };

  void bind_udp(const core::Endpoint& endpoint, unsigned count) {
    std::uint16_t port = endpoint.port;
    for (unsigned i = 0; i < count; ++i) {
      auto shard = std::make_unique<UdpShard>();
      auto& socket = shard->socket;
      udp::endpoint where(endpoint.address, port);
      error_code ec;
      socket.open(where.protocol(), ec);
      // One socket per thread on the same address: the kernel spreads datagrams across them.
      if (!ec) socket.set_option(ReusePort(true), ec);
      if (!ec && endpoint.address.is_v6() && endpoint.address.is_unspecified()) {
        socket.set_option(asio::ip::v6_only(core::ipv6_only(endpoint, config.dns.listen)), ec);
      }
      if (!ec) socket.bind(where, ec);
      if (!ec) socket.non_blocking(true, ec);
      if (ec) throw std::system_error(ec, "dns: cannot listen on udp " + endpoint.to_string());
      auto bound = to_endpoint(socket.local_endpoint());
      port = bound.port;  // a configured port 0: every socket shares the first one's port
      if (i == 0) udp_bound.push_back(bound);
      shard->cpu = i;
      udp_shards.push_back(std::move(shard));
    }
    steer_by_cpu(*udp_shards.back(), count);
  }

  // Hands each datagram to the socket whose thread runs on the CPU that received it (the one
  // that took the NIC interrupt, or for loopback the sender's): the wake-up stays on that CPU and
  // its caches. Without the filter the kernel hashes the sender's address and port, and a few
  // busy clients can all land on one socket. Best effort: without it, hashing still works.
  void steer_by_cpu(UdpShard& any_of_group, unsigned count) {
    sock_filter code[] = {
        {BPF_LD | BPF_W | BPF_ABS, 0, 0, static_cast<std::uint32_t>(SKF_AD_OFF + SKF_AD_CPU)},
        {BPF_ALU | BPF_MOD | BPF_K, 0, 0, count},
        {BPF_RET | BPF_A, 0, 0, 0},
    };
    sock_fprog program{static_cast<unsigned short>(std::size(code)), code};
    if (::setsockopt(any_of_group.socket.native_handle(), SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF,
                     &program, sizeof program) != 0) {
      log->debug("udp: no CPU steering ({}), sockets share datagrams by hash", errno);
    }
  }

  void start_udp() {
    for (std::size_t i = 0; i < udp_shards.size(); ++i) {
      UdpShard& shard = *udp_shards[i];
      wait_readable(shard, core::GateHolder(gate));
      shard.thread = std::thread([this, &shard, i] {
        std::string name = "dns-udp-" + std::to_string(i);
        pthread_setname_np(pthread_self(), name.c_str());
        cpu_set_t cpus;
        CPU_ZERO(&cpus);
        CPU_SET(shard.cpu, &cpus);
        pthread_setaffinity_np(pthread_self(), sizeof cpus, &cpus);
        try {
          shard.io.run();
        } catch (const std::exception& e) {
          log->error("dns udp thread stopped: {}", e.what());
        }
      });
    }
  }

  void wait_readable(UdpShard& shard, core::GateHolder hold) {
    shard.socket.async_wait(udp::socket::wait_read,
                            [this, &shard, hold = std::move(hold)](const error_code& ec) mutable {
                              if (ec || !shard.socket.is_open()) return;  // stopping
                              read_batches(shard);
                              wait_readable(shard, std::move(hold));
                            });
  }

  // Reads and answers until the socket has nothing left, a bounded number of batches at a time so
  // that stop() gets a turn.
  void read_batches(UdpShard& shard) {
    const int fd = shard.socket.native_handle();
    for (int round = 0; round < kUdpRounds; ++round) {
      for (std::size_t i = 0; i < kUdpBatch; ++i) {
        shard.in_iov[i] = {shard.in[i].data(), shard.in[i].size()};
        auto& header = shard.in_msg[i].msg_hdr;
        header = {};
        header.msg_name = &shard.from[i];
        header.msg_namelen = sizeof(sockaddr_storage);
        header.msg_iov = &shard.in_iov[i];
        header.msg_iovlen = 1;
      }
      int received = ::recvmmsg(fd, shard.in_msg.data(), kUdpBatch, MSG_DONTWAIT, nullptr);
      if (received <= 0) return;  // EAGAIN, or an ICMP error surfacing: wait for more
      std::size_t answers = 0;
      for (std::size_t i = 0; i < static_cast<std::size_t>(received); ++i) {
        const auto& header = shard.in_msg[i].msg_hdr;
        if ((header.msg_flags & MSG_TRUNC) != 0) {  // larger than any query of ours
          count_malformed(counters, WireError::trailing_garbage);
          continue;
        }
        auto client = from_sockaddr(shard.from[i]);
        if (!client) continue;
        std::span<const std::uint8_t> packet(shard.in[i].data(), shard.in_msg[i].msg_len);
        auto& out = shard.out[answers];
        // One reference captured: std::function keeps it inline, no allocation per datagram.
        const Sender sender{this, &shard, &shard.from[i], header.msg_namelen};
        auto outcome = answer(packet, *client, false, out, [&sender] {
          return sender.state->deferred_udp_send(*sender.shard, *sender.from, sender.length);
        });
        if (outcome != Outcome::answered) continue;
        shard.out_iov[answers] = {out.data(), out.size()};
        auto& reply = shard.out_msg[answers].msg_hdr;
        reply = {};
        reply.msg_name = &shard.from[i];
        reply.msg_namelen = header.msg_namelen;
        reply.msg_iov = &shard.out_iov[answers];
        reply.msg_iovlen = 1;
        ++answers;
      }
      send_batch(fd, shard.out_msg.data(), answers);
      if (static_cast<std::size_t>(received) < kUdpBatch) return;
    }
  }

  void send_batch(int fd, mmsghdr* messages, std::size_t count) {
    std::size_t sent = 0;
    while (sent < count) {
      int n = ::sendmmsg(fd, messages + sent, static_cast<unsigned>(count - sent), MSG_DONTWAIT);
      if (n > 0) {
        sent += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      // The send buffer is full (or the client unreachable): drop this one, go on with the rest.
      counters.send_errors.add();
      ++sent;
    }
  }

  // An answer that waits for upstream goes out from whichever thread gets it, straight to the
  // socket: a datagram send needs no lock, and the descriptor stays open until the state that
  // every such Send holds is gone.
  Send deferred_udp_send(UdpShard& shard, const sockaddr_storage& from, socklen_t length) {
    return [self = shared_from_this(), fd = shard.socket.native_handle(), from,
            length](std::vector<std::uint8_t> answer) {
      ssize_t n = ::sendto(fd, answer.data(), answer.size(), MSG_DONTWAIT,
                           reinterpret_cast<const sockaddr*>(&from), length);
      if (n < 0) self->counters.send_errors.add();
    };
  }

  static std::optional<core::Endpoint> from_sockaddr(const sockaddr_storage& from) {
    if (from.ss_family == AF_INET) {
      const auto& in = reinterpret_cast<const sockaddr_in&>(from);
      return core::Endpoint{asio::ip::address_v4(ntohl(in.sin_addr.s_addr)), ntohs(in.sin_port)};
    }
    if (from.ss_family == AF_INET6) {
      const auto& in6 = reinterpret_cast<const sockaddr_in6&>(from);
      asio::ip::address_v6::bytes_type bytes;
      std::memcpy(bytes.data(), in6.sin6_addr.s6_addr, bytes.size());
      return core::Endpoint{core::unmapped(asio::ip::address_v6(bytes, in6.sin6_scope_id)),
                            ntohs(in6.sin6_port)};
    }
    return std::nullopt;
  }

  void join_udp() {
    for (auto& shard : udp_shards) {
      if (!shard->thread.joinable()) continue;
      if (std::this_thread::get_id() == shard->thread.get_id()) {
        shard->thread.detach();  // cannot happen: shard threads hold no reference to the state
        continue;
      }
      shard->io.stop();
      shard->thread.join();
    }
  }

  // ---- TCP ----

  void on_tcp_connection(core::AcceptedConnection accepted) {
    auto connection =
        std::make_shared<TcpConnection>(std::move(accepted.socket), tcp_limits.read_timeout);
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
    connection->stream.expires_after(connection->read_timeout);
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
                                           [[maybe_unused]] core::ConnectionHold hold) {
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
      stream.expires_after(self->tcp_limits.idle_timeout);
      co_await asio::async_read(stream, asio::buffer(length_bytes),
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      std::size_t length = (std::size_t{length_bytes[0]} << 8) | length_bytes[1];
      if (length == 0) break;
      message.resize(length);
      stream.expires_after(self->tcp_limits.read_timeout);
      co_await asio::async_read(stream, asio::buffer(message),
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      if (connection->in_flight >= self->tcp_limits.max_in_flight)
        break;  // a client that never reads answers
      std::vector<std::uint8_t> now;
      auto outcome = self->answer(message, peer, true, now, [&] {
        ++connection->in_flight;
        return Send([connection, executor](std::vector<std::uint8_t> later) {
          asio::dispatch(executor, [connection, later = std::move(later)]() mutable {
            --connection->in_flight;
            queue_answer(connection, std::move(later));
          });
        });
      });
      if (outcome == Outcome::answered) queue_answer(connection, std::move(now));
    }
    {
      std::lock_guard lock(self->tcp_mutex);
      self->tcp_connections.erase(registered);
    }
    // Answers still in flight are written if the client keeps reading; the socket closes when the
    // last handler lets go of the connection.
  }

  void stop(std::function<void()> drained) {
    // Stop reading; the descriptors stay open for answers still coming back from upstream.
    for (auto& shard : udp_shards) {
      asio::post(shard->io, [s = shard.get()] {
        error_code ignored;
        s->socket.cancel(ignored);
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

Responder::Responder(asio::io_context& io, const config::Config& config, health::HealthGate& gate,
                     Upstream& upstream, const core::Clock& clock, TcpLimits tcp_limits)
    : state_(std::make_shared<State>(io, config, gate, upstream, clock, tcp_limits)) {
  std::weak_ptr<State> weak = state_;
  state_->tcp_listener = std::make_unique<core::TcpListener>(
      io, "dns", config.dns.listen, std::vector<core::Cidr>{}, tcp_limits.max_connections,
      state_->gate, state_->tcp_counters, [weak](core::AcceptedConnection connection) {
        if (auto state = weak.lock()) state->on_tcp_connection(std::move(connection));
      });
}

Responder::~Responder() { state_->join_udp(); }

void Responder::start() {
  unsigned per_address = std::max(1U, std::thread::hardware_concurrency());
  for (const auto& endpoint : state_->config.dns.listen) state_->bind_udp(endpoint, per_address);
  state_->tcp_listener->bind();
  state_->start_udp();
  for (const auto& endpoint : state_->udp_bound) {
    state_->log->info("listening on udp {} ({} sockets)", endpoint.to_string(), per_address);
  }
  state_->tcp_listener->start("tcp", state_);
}

void Responder::stop(std::function<void()> drained) { state_->stop(std::move(drained)); }

void Responder::handle(std::span<const std::uint8_t> packet, const core::Endpoint& client,
                       bool over_tcp, Send send) {
  std::vector<std::uint8_t> now;
  if (state_->answer(packet, client, over_tcp, now, [&] { return send; }) == Outcome::answered) {
    send(std::move(now));
  }
}

const core::ListenerCounters& Responder::tcp_listener_counters() const {
  return state_->tcp_counters;
}

const DnsCounters& Responder::counters() const { return state_->counters; }
std::size_t Responder::cache_entries() const { return state_->cache.size(); }

std::vector<core::Endpoint> Responder::udp_endpoints() const { return state_->udp_bound; }

std::vector<core::Endpoint> Responder::tcp_endpoints() const {
  return state_->tcp_listener->bound();
}

}  // namespace pullthrough::dns
