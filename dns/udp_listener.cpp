#include "dns/udp_listener.hpp"

#include "core/asio.hpp"

#include <array>
#include <cstring>
#include <optional>
#include <string>
#include <thread>

#include <linux/filter.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>

#include "core/logging.hpp"

namespace pullthrough::dns {
namespace {

using asio::ip::udp;
using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

constexpr std::size_t kUdpBuffer = 4096;  // larger datagrams are no queries of ours
constexpr std::size_t kUdpBatch = 32;     // datagrams per recvmmsg / sendmmsg
constexpr int kUdpRounds = 8;             // batches per wake-up before stop() gets a turn

core::Endpoint to_endpoint(const udp::endpoint& e) {
  return core::Endpoint{core::unmapped(e.address()), e.port()};
}

std::optional<core::Endpoint> from_sockaddr(const sockaddr_storage& from) {
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

}  // namespace

// One socket, with its own thread and event loop. SO_REUSEPORT spreads the datagrams sent to one
// address over its sockets, so the hot path takes no lock shared with another thread and wakes no
// other thread, and each wake-up reads and answers a whole batch with one recvmmsg and one
// sendmmsg.
struct UdpListener::Shard {
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

struct UdpListener::State {
  State(std::vector<core::Endpoint> addresses, QueryHandler query_handler, Counters counted)
      : listen(std::move(addresses)), handler(query_handler), counters(counted) {}

  std::vector<core::Endpoint> listen;
  QueryHandler handler;
  Counters counters;
  std::shared_ptr<spdlog::logger> log = core::logger("dns");
  std::weak_ptr<void> owner;
  std::vector<std::unique_ptr<Shard>> shards;
  std::vector<core::Endpoint> bound;

  // Where a deferred answer goes: the datagram's sender, on the socket it came in on.
  struct Sender {
    State* state;
    Shard* shard;
    const sockaddr_storage* from;
    socklen_t length;
  };

  void bind(const core::Endpoint& endpoint, unsigned count) {
    std::uint16_t port = endpoint.port;
    for (unsigned i = 0; i < count; ++i) {
      auto shard = std::make_unique<Shard>();
      auto& socket = shard->socket;
      udp::endpoint where(endpoint.address, port);
      error_code ec;
      socket.open(where.protocol(), ec);
      // One socket per thread on the same address: the kernel spreads datagrams across them.
      if (!ec) socket.set_option(ReusePort(true), ec);
      if (!ec && endpoint.address.is_v6() && endpoint.address.is_unspecified()) {
        socket.set_option(asio::ip::v6_only(core::ipv6_only(endpoint, listen)), ec);
      }
      if (!ec) socket.bind(where, ec);
      if (!ec) socket.non_blocking(true, ec);
      if (ec) throw std::system_error(ec, "dns: cannot listen on udp " + endpoint.to_string());
      auto local = to_endpoint(socket.local_endpoint());
      port = local.port;  // a configured port 0: every socket shares the first one's port
      if (i == 0) bound.push_back(local);
      shard->cpu = i;
      shards.push_back(std::move(shard));
    }
    steer_by_cpu(*shards.back(), count);
  }

  // Hands each datagram to the socket whose thread runs on the CPU that received it (the one
  // that took the NIC interrupt, or for loopback the sender's): the wake-up stays on that CPU and
  // its caches. Without the filter the kernel hashes the sender's address and port, and a few
  // busy clients can all land on one socket. Best effort: without it, hashing still works.
  void steer_by_cpu(Shard& any_of_group, unsigned count) {
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

  void start(core::Gate& gate) {
    for (std::size_t i = 0; i < shards.size(); ++i) {
      Shard& shard = *shards[i];
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

  void wait_readable(Shard& shard, core::GateHolder hold) {
    shard.socket.async_wait(udp::socket::wait_read,
                            [this, &shard, hold = std::move(hold)](const error_code& ec) mutable {
                              if (ec || !shard.socket.is_open()) return;  // stopping
                              read_batches(shard);
                              wait_readable(shard, std::move(hold));
                            });
  }

  // Reads and answers until the socket has nothing left, a bounded number of batches at a time so
  // that stop() gets a turn.
  void read_batches(Shard& shard) {
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
          counters.malformed.add();
          counters.too_large.add();
          continue;
        }
        auto client = from_sockaddr(shard.from[i]);
        if (!client) continue;
        std::span<const std::uint8_t> packet(shard.in[i].data(), shard.in_msg[i].msg_len);
        auto& out = shard.out[answers];
        // One reference captured: std::function keeps it inline, no allocation per datagram.
        const Sender sender{this, &shard, &shard.from[i], header.msg_namelen};
        auto outcome = handler(packet, *client, false, out, [&sender] {
          return sender.state->deferred_send(*sender.shard, *sender.from, sender.length);
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
  // socket: a datagram send needs no lock, and the descriptor stays open until the owner that
  // every such Send holds is gone.
  Send deferred_send(Shard& shard, const sockaddr_storage& from, socklen_t length) {
    return [keep = owner.lock(), fd = shard.socket.native_handle(), from, length,
            &send_errors = counters.send_errors](std::vector<std::uint8_t> answer) {
      ssize_t n = ::sendto(fd, answer.data(), answer.size(), MSG_DONTWAIT,
                           reinterpret_cast<const sockaddr*>(&from), length);
      if (n < 0) send_errors.add();
    };
  }

  void stop() {
    for (auto& shard : shards) {
      asio::post(shard->io, [s = shard.get()] {
        error_code ignored;
        s->socket.cancel(ignored);
      });
    }
  }

  void join() {
    for (auto& shard : shards) {
      if (!shard->thread.joinable()) continue;
      if (std::this_thread::get_id() == shard->thread.get_id()) {
        shard->thread.detach();  // cannot happen: shard threads hold no reference to the owner
        continue;
      }
      shard->io.stop();
      shard->thread.join();
    }
  }
};

UdpListener::UdpListener(std::vector<core::Endpoint> listen, QueryHandler handler,
                         Counters counters)
    : state_(std::make_unique<State>(std::move(listen), handler, counters)) {}

UdpListener::~UdpListener() { state_->join(); }

void UdpListener::bind(unsigned per_address) {
  for (const auto& endpoint : state_->listen) state_->bind(endpoint, per_address);
}

void UdpListener::start(core::Gate& gate, const std::shared_ptr<void>& owner) {
  state_->owner = owner;
  state_->start(gate);
}

void UdpListener::stop() { state_->stop(); }

void UdpListener::join() { state_->join(); }

const std::vector<core::Endpoint>& UdpListener::bound() const { return state_->bound; }

}  // namespace pullthrough::dns
