#include "dns/forwarder.hpp"

#include "core/asio.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <type_traits>
#include <unordered_map>

#include <ares.h>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <netinet/in.h>
#include <spdlog/logger.h>
#include <sys/socket.h>

#include "core/logging.hpp"

namespace pullthrough::dns {
namespace {

using Done = std::function<void(ForwardResult)>;
// The forwarder's strand, held type-erased as its timer and descriptors hold it.
using Strand = asio::any_io_executor;

constexpr std::size_t kDnsHeaderBytes = 12;
constexpr std::size_t kMaxMessageBytes = 65535;

struct ChannelDeleter {
  void operator()(ares_channel channel) const { ares_destroy(channel); }
};
using Channel = std::unique_ptr<std::remove_pointer_t<ares_channel>, ChannelDeleter>;

void init_library() {
  static std::once_flag once;
  static int status = ARES_SUCCESS;
  std::call_once(once, [] { status = ares_library_init(ARES_LIB_INIT_ALL); });
  if (status != ARES_SUCCESS) {
    throw std::runtime_error(std::string("c-ares: cannot initialise the library: ") +
                             ares_strerror(status));
  }
}

Channel open_channel(const std::vector<core::Endpoint>& upstreams,
                     std::chrono::milliseconds timeout, ares_sock_state_cb on_socket_state,
                     void* data) {
  init_library();
  // ares_options wants mutable strings.
  char lookups[] = "b";  // DNS only, never /etc/hosts
  // The upstreams are ours to choose (dns/upstream_selection.cpp already read resolv.conf when
  // asked to): an empty file keeps the host's search domains, options and nsswitch.conf out of the
  // channel.
  char resolv_conf[] = "/dev/null";
  ares_options options{};
  // NOCHECKRESP: SERVFAIL, REFUSED and NOTIMP are answers to relay, not reasons to try the next
  // upstream and, once none is left, to swallow the response.
  options.flags = ARES_FLAG_NOCHECKRESP | ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
  options.timeout = static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(
      timeout.count(), 1, std::numeric_limits<int>::max()));
  options.tries = 1;  // each upstream once, in order
  options.domains = nullptr;
  options.ndomains = 0;
  options.lookups = lookups;
  options.sock_state_cb = on_socket_state;
  options.sock_state_cb_data = data;
  options.resolvconf_path = resolv_conf;
  int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_NOROTATE |
             ARES_OPT_DOMAINS | ARES_OPT_LOOKUPS | ARES_OPT_SOCK_STATE_CB | ARES_OPT_RESOLVCONF;
  ares_channel raw = nullptr;
  int status = ares_init_options(&raw, &options, mask);
  if (status != ARES_SUCCESS) {
    throw std::runtime_error(std::string("c-ares: cannot create a channel: ") +
                             ares_strerror(status));
  }
  Channel channel(raw);

  std::vector<ares_addr_port_node> servers(upstreams.size());
  for (std::size_t i = 0; i < upstreams.size(); ++i) {
    auto& server = servers[i];
    auto address = core::unmapped(upstreams[i].address);
    if (address.is_v4()) {
      auto bytes = address.to_v4().to_bytes();
      server.family = AF_INET;
      std::memcpy(&server.addr.addr4, bytes.data(), bytes.size());
    } else {
      auto bytes = address.to_v6().to_bytes();
      server.family = AF_INET6;
      std::memcpy(&server.addr.addr6, bytes.data(), bytes.size());
    }
    server.udp_port = upstreams[i].port;
    server.tcp_port = upstreams[i].port;
    server.next = i + 1 < servers.size() ? &servers[i + 1] : nullptr;
  }
  status = ares_set_servers_ports(channel.get(), servers.empty() ? nullptr : servers.data());
  if (status != ARES_SUCCESS) {
    throw std::runtime_error(std::string("c-ares: cannot set the upstream servers: ") +
                             ares_strerror(status));
  }
  return channel;
}

ForwardResult failure(std::string error) {
  ForwardResult result;
  result.status = ForwardResult::Status::error;
  result.error = std::move(error);
  return result;
}

}  // namespace

// Shared by the forwarder and every handler it has in flight, so that ~Forwarder can hand the
// teardown to the strand. The channel and everything below it are touched on the strand only.
struct Forwarder::State : std::enable_shared_from_this<Forwarder::State> {
  // A socket c-ares asked us to watch. The waits in flight on it share it, because they may
  // complete after c-ares closed the socket and perhaps reused its number for another one.
  struct Watch {
    explicit Watch(const Strand& strand) : descriptor(strand) {}
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;
    // c-ares owns the socket and closes it itself.
    ~Watch() {
      if (descriptor.is_open()) descriptor.release();
    }

    asio::posix::stream_descriptor descriptor;
    ares_socket_t fd = ARES_SOCKET_BAD;
    bool want_read = false;
    bool want_write = false;
    bool read_armed = false;
    bool write_armed = false;
    bool closed = false;
  };

  // What c-ares carries for one query from ares_send to its callback.
  struct Query {
    State* state;
    Done done;
  };

  Strand strand;
  std::vector<core::Endpoint> upstreams;
  ForwarderCounters counters;
  std::shared_ptr<spdlog::logger> log;
  asio::steady_timer timer;
  bool timer_pending = false;
  std::unordered_map<ares_socket_t, std::shared_ptr<Watch>> watches;
  // Set by ~State: callbacks c-ares makes from then on have no strand left to deliver to.
  bool tearing_down = false;
  // Reset on the strand by close(), or by ~State.
  Channel channel;

  State(asio::io_context& io, std::vector<core::Endpoint> upstream_list,
        std::chrono::milliseconds timeout)
      : strand(asio::make_strand(io)),
        upstreams(std::move(upstream_list)),
        log(core::logger("dns")),
        timer(strand),
        channel(open_channel(upstreams, timeout, &State::on_socket_state, this)) {}

  State(const State&) = delete;
  State& operator=(const State&) = delete;

  // Only reached with a live channel when the io_context dropped the teardown ~Forwarder posted
  // (it was stopped and destroyed): then, as Asio does with its own handlers, the queries'
  // `done` are destroyed without being called.
  ~State() {
    tearing_down = true;
    channel.reset();
    for (auto& entry : watches) forget(*entry.second);
  }

  static void on_socket_state(void* data, ares_socket_t fd, int readable, int writable) {
    static_cast<State*>(data)->socket_state(fd, readable != 0, writable != 0);
  }

  static void on_query_done(void* arg, int status, int /*timeouts*/, unsigned char* abuf,
                            int alen) {
    std::unique_ptr<Query> query(static_cast<Query*>(arg));
    query->state->complete(std::move(query->done), status, abuf, alen);
  }

  void send(const std::vector<std::uint8_t>& bytes, Done done) {
    if (!channel) return fail(done, "shut down");
    if (upstreams.empty()) return fail(done, "no upstream resolvers");
    if (bytes.size() < kDnsHeaderBytes) return fail(done, "query shorter than a header");
    if (bytes.size() > kMaxMessageBytes) return fail(done, "query too long");
    counters.queries_sent.add();
    auto query = std::make_unique<Query>(Query{this, std::move(done)});
    // c-ares copies the query; it may also call back before returning.
    ares_send(channel.get(), bytes.data(), static_cast<int>(bytes.size()), &State::on_query_done,
              query.release());
    schedule_timer();
  }

  void fail(const Done& done, std::string error) {
    counters.errors.add();
    done(failure(std::move(error)));
  }

  void complete(Done done, int status, const unsigned char* abuf, int alen) {
    if (tearing_down) return;
    ForwardResult result;
    switch (status) {
      case ARES_SUCCESS:
        result.status = ForwardResult::Status::answer;
        if (abuf != nullptr && alen > 0) result.answer.assign(abuf, abuf + alen);
        counters.answers.add();
        break;
      case ARES_ETIMEOUT:
        result.status = ForwardResult::Status::timeout;
        result.error = "every upstream timed out";
        counters.timeouts.add();
        break;
      case ARES_ECANCELLED:
      case ARES_EDESTRUCTION:
        result = failure("shut down");
        counters.errors.add();
        break;
      default:
        result = failure(ares_strerror(status));
        counters.errors.add();
        break;
    }
    // Not from inside c-ares: `done` may forward again, shut down, or throw.
    asio::post(strand, [done = std::move(done), result = std::move(result)]() mutable {
      done(std::move(result));
    });
  }

  // Called from inside c-ares, which closes the socket right after a (false, false).
  void socket_state(ares_socket_t fd, bool readable, bool writable) {
    auto found = watches.find(fd);
    if (!readable && !writable) {
      if (found != watches.end()) {
        forget(*found->second);
        watches.erase(found);
      }
      return;
    }
    if (tearing_down) return;
    std::shared_ptr<Watch> watch;
    if (found != watches.end()) {
      watch = found->second;
    } else {
      watch = std::make_shared<Watch>(strand);
      error_code ec;
      watch->descriptor.assign(fd, ec);
      if (ec) {
        // Its queries still end, by timeout.
        log->warn("forwarder: cannot watch c-ares socket {}: {}", fd, ec.message());
        return;
      }
      watch->fd = fd;
      watches.emplace(fd, watch);
    }
    watch->want_read = readable;
    watch->want_write = writable;
    arm(watch);
  }

  static void forget(Watch& watch) {
    watch.closed = true;
    if (watch.descriptor.is_open()) watch.descriptor.release();  // cancels its waits
  }

  void arm(const std::shared_ptr<Watch>& watch) {
    if (watch->want_read && !watch->read_armed) wait(watch, true);
    if (watch->want_write && !watch->write_armed) wait(watch, false);
  }

  // Asio's reactor is edge-triggered, but queuing a wait re-arms the descriptor's registration
  // (EPOLL_CTL_MOD), so a wait on a socket that is ready already completes at once. That matters:
  // c-ares reads one piece of a TCP answer per call and leaves the rest for the next wait.
  void wait(const std::shared_ptr<Watch>& watch, bool for_read) {
    (for_read ? watch->read_armed : watch->write_armed) = true;
    auto type = for_read ? asio::posix::stream_descriptor::wait_read
                         : asio::posix::stream_descriptor::wait_write;
    watch->descriptor.async_wait(
        type, [self = shared_from_this(), watch, for_read](const error_code& ec) {
          (for_read ? watch->read_armed : watch->write_armed) = false;
          if (ec == asio::error::operation_aborted || watch->closed) return;
          if (ec) {
            // Not re-armed, so that a broken descriptor cannot spin; its queries time out.
            self->log->warn("forwarder: waiting on c-ares socket {} failed: {}", watch->fd,
                            ec.message());
            return;
          }
          self->on_ready(watch, for_read);
        });
  }

  void on_ready(const std::shared_ptr<Watch>& watch, bool readable) {
    if (!channel) return;
    // A wait c-ares stopped wanting meanwhile (its TCP send queue emptied) is let go.
    if (readable ? watch->want_read : watch->want_write) {
      ares_process_fd(channel.get(), readable ? watch->fd : ARES_SOCKET_BAD,
                      readable ? ARES_SOCKET_BAD : watch->fd);
    }
    if (!watch->closed) arm(watch);
    schedule_timer();
  }

  // Keeps one timer wait no later than c-ares's next query deadline.
  void schedule_timer() {
    if (!channel) return;
    timeval tv{};
    if (ares_timeout(channel.get(), nullptr, &tv) == nullptr) return;
    // ares_timeout rounds down to the millisecond; waking before the deadline would only spin.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(tv.tv_sec) +
                    std::chrono::microseconds(tv.tv_usec) + std::chrono::milliseconds(1);
    if (timer_pending && timer.expiry() <= deadline) return;
    timer.expires_at(deadline);
    timer_pending = true;
    timer.async_wait([self = shared_from_this()](const error_code& ec) {
      if (ec == asio::error::operation_aborted) return;  // replaced, or closed
      self->timer_pending = false;
      if (!self->channel) return;
      ares_process_fd(self->channel.get(), ARES_SOCKET_BAD, ARES_SOCKET_BAD);
      self->schedule_timer();
    });
  }

  static void close_on_strand(std::shared_ptr<State> state) {
    auto& strand = state->strand;
    asio::post(strand, [state = std::move(state)] { state->close(); });
  }

  void close() {
    if (channel) {
      ares_cancel(channel.get());  // fails what is in flight with ARES_ECANCELLED
      channel.reset();
    }
    for (auto& entry : watches) forget(*entry.second);
    watches.clear();
    timer.cancel();
    timer_pending = false;
  }
};

Forwarder::Forwarder(boost::asio::io_context& io, std::vector<core::Endpoint> upstreams,
                     std::chrono::milliseconds timeout)
    : state_(std::make_shared<State>(io, std::move(upstreams), timeout)) {}

// The channel may be busy on the strand right now: it is closed there, and the state lives on
// until the last handler holding it has run.
Forwarder::~Forwarder() { State::close_on_strand(std::move(state_)); }

void Forwarder::forward(std::span<const std::uint8_t> query,
                        std::function<void(ForwardResult)> done) {
  asio::post(state_->strand,
             [state = state_, bytes = std::vector<std::uint8_t>(query.begin(), query.end()),
              done = std::move(done)]() mutable { state->send(bytes, std::move(done)); });
}

void Forwarder::shutdown() { State::close_on_strand(state_); }

const ForwarderCounters& Forwarder::counters() const { return state_->counters; }

}  // namespace pullthrough::dns
