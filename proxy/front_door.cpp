#include "proxy/front_door.hpp"

#include "core/asio.hpp"

#include <atomic>
#include <list>
#include <mutex>
#include <thread>

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/gate.hpp"
#include "core/logging.hpp"
#include "core/spawn.hpp"
#include "proxy/client_connection_limit.hpp"

namespace pullthrough::proxy {
namespace {}  // namespace

struct TlsFrontDoor::State : std::enable_shared_from_this<TlsFrontDoor::State> {
  const config::Config& config;
  ServerTls& tls;
  TlsHandler handler;
  FrontDoorLimits limits;
  UntrustedClientHandler on_untrusted_client;
  std::shared_ptr<spdlog::logger> log = core::logger("proxy");
  core::Gate gate;
  FrontDoorCounters counters;
  core::ListenerCounters listener_counters;
  std::unique_ptr<core::TcpListener> listener;
  ClientConnectionLimit per_client;
  // Each connection's on_stopping wake-up, run on its strand by stop().
  struct Waker {
    asio::any_io_executor executor;
    std::function<void()> wake;
  };
  std::mutex wakers_mutex;
  std::list<Waker> wakers;
  std::atomic<bool> stopping{false};

  State(const config::Config& cfg, ServerTls& server_tls, TlsHandler connection_handler,
        FrontDoorLimits connection_limits, UntrustedClientHandler untrusted_client_handler)
      : config(cfg),
        tls(server_tls),
        handler(std::move(connection_handler)),
        limits(connection_limits),
        on_untrusted_client(std::move(untrusted_client_handler)),
        per_client(connection_limits.max_connections_per_client) {}

  // Runs on the accepting thread, before anything is read from the connection.
  void on_connection(core::AcceptedConnection accepted) {
    auto place = per_client.admit(accepted.peer.address);
    if (!place) {
      // Dropping `accepted` closes the socket unread (a reset, when its ClientHello is already
      // in) and gives back its place among max_connections.
      counters.connections_refused_per_client.add();
      log->debug("closed a connection from {}: it already has {} open", accepted.peer.to_string(),
                 limits.max_connections_per_client);
      return;
    }
    auto executor = accepted.socket.get_executor();
    core::spawn_logged(executor, run(shared_from_this(), std::move(accepted), std::move(*place)),
                       log, "connection dropped");
  }

  // The connection's gate holder and its client's place are released only after the handler
  // returns. They are locals here and `self` a parameter, so they are given back before `self`
  // can release the state that owns them; the place goes first, so a connection no longer
  // counted in open_connections() no longer counts against its client either.
  static asio::awaitable<void> run(std::shared_ptr<State> self, core::AcceptedConnection accepted,
                                   ClientConnectionLimit::Place place) {
    core::ConnectionHold hold = std::move(accepted.hold);
    ClientConnectionLimit::Place client_place = std::move(place);
    co_await self->handshake_and_handle(std::move(accepted));
  }

  asio::awaitable<void> handshake_and_handle(core::AcceptedConnection accepted) {
    auto stream =
        std::make_unique<TlsStream>(beast::tcp_stream(std::move(accepted.socket)), tls.context());
    beast::get_lowest_layer(*stream).expires_after(limits.handshake_timeout);
    error_code ec;
    co_await stream->async_handshake(asio::ssl::stream_base::server,
                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec == beast::error::timeout) {
      counters.handshake_timeouts.add();
      co_return;
    }
    if (ec) {
      counters.handshakes_failed.add();
      log->debug("TLS handshake with {} failed: {}", accepted.peer.to_string(), ec.message());
      if (auto alert = certificate_alert(ec)) untrusted_client(accepted.peer, *alert);
      co_return;
    }
    beast::get_lowest_layer(*stream).expires_never();
    counters.handshakes_completed.add();
    if (SSL_session_reused(stream->native_handle()) == 1) counters.sessions_resumed.add();
    TlsConnection connection;
    connection.server_name = server_name_of(stream->native_handle());
    // The SNI callback admitted this name, so it names a configured registry.
    connection.registry = config.find_registry(connection.server_name);
    if (connection.registry == nullptr) co_return;
    connection.stream = std::move(stream);
    connection.peer = accepted.peer;
    connection.local = accepted.local;
    connection.stopping = [self = shared_from_this()] { return self->stopping.load(); };
    std::list<Waker>::iterator waker;
    {
      std::lock_guard lock(wakers_mutex);
      waker = wakers.insert(wakers.end(), Waker{connection.stream->get_executor(), {}});
    }
    struct Unregister {
      State& state;
      std::list<Waker>::iterator waker;
      ~Unregister() {
        std::lock_guard lock(state.wakers_mutex);
        state.wakers.erase(waker);
      }
    } unregister{*this, waker};
    connection.on_stopping = [self = shared_from_this(), waker](std::function<void()> wake) {
      std::lock_guard lock(self->wakers_mutex);
      waker->wake = std::move(wake);
      // stop() sets the flag before it runs the wake-ups: one set after that runs here.
      if (self->stopping.load()) asio::post(waker->executor, waker->wake);
    };
    co_await handler(std::move(connection));
  }

  void untrusted_client(const core::Endpoint& peer, CertificateAlert alert) {
    switch (alert) {
      case CertificateAlert::bad_certificate:
        counters.handshakes_untrusted_bad_certificate.add();
        break;
      case CertificateAlert::certificate_unknown:
        counters.handshakes_untrusted_certificate_unknown.add();
        break;
      case CertificateAlert::unknown_ca:
        counters.handshakes_untrusted_unknown_ca.add();
        break;
    }
    if (on_untrusted_client) on_untrusted_client(peer, alert);
  }

  void stop(std::function<void()> drained) {
    listener->close();
    {
      std::lock_guard lock(wakers_mutex);
      stopping.store(true);
      for (const auto& waker : wakers) {
        if (waker.wake) asio::post(waker.executor, waker.wake);
      }
    }
    gate.close(std::move(drained));
  }
};

TlsFrontDoor::TlsFrontDoor(asio::io_context& io, const config::Config& config, ServerTls& tls,
                           TlsHandler handler, FrontDoorLimits limits,
                           UntrustedClientHandler on_untrusted_client)
    : state_(std::make_shared<State>(config, tls, std::move(handler), limits,
                                     std::move(on_untrusted_client))) {
  std::weak_ptr<State> weak = state_;
  state_->listener = std::make_unique<core::TcpListener>(
      io, "proxy", config.proxy.listen, config.proxy.allow, limits.max_connections, state_->gate,
      state_->listener_counters, [weak](core::AcceptedConnection connection) {
        if (auto state = weak.lock()) state->on_connection(std::move(connection));
      });
  unsigned count = limits.event_loops != 0 ? limits.event_loops
                                           : std::max(1U, std::thread::hardware_concurrency());
  loops_ = std::make_shared<core::EventLoops>("proxy", count);
  // A connection accepted after the loops are gone (an abandoned drain) gets a strand of `io`.
  state_->listener->set_connection_executor(
      [loops = std::weak_ptr<core::EventLoops>(loops_), &io]() -> asio::any_io_executor {
        if (auto alive = loops.lock()) return alive->next();
        return asio::make_strand(io);
      });
}

TlsFrontDoor::~TlsFrontDoor() {
  // Stops the loops and destroys what is left on them before the state goes.
  loops_.reset();
}

void TlsFrontDoor::start() {
  state_->listener->bind();
  loops_->start();
  state_->listener->start("https", state_);
}

void TlsFrontDoor::stop(std::function<void()> drained) { state_->stop(std::move(drained)); }

const std::vector<core::Endpoint>& TlsFrontDoor::bound_endpoints() const {
  return state_->listener->bound();
}

const FrontDoorCounters& TlsFrontDoor::counters() const { return state_->counters; }
std::size_t TlsFrontDoor::open_connections() const { return state_->listener->open_connections(); }

const core::ListenerCounters& TlsFrontDoor::listener_counters() const {
  return state_->listener_counters;
}

}  // namespace pullthrough::proxy
