#include "core/tcp_listener.hpp"

#include "core/asio.hpp"

#include <algorithm>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/logging.hpp"
#include "core/spawn.hpp"

namespace pullthrough::core {
namespace {

using asio::ip::tcp;

Endpoint to_endpoint(const tcp::endpoint& e) { return Endpoint{unmapped(e.address()), e.port()}; }

}  // namespace

struct TcpListener::State : std::enable_shared_from_this<TcpListener::State> {
  asio::io_context& io;
  std::string name;
  std::vector<Endpoint> listen;
  std::vector<Cidr> allow;
  std::size_t max_connections;
  Gate& gate;
  ListenerCounters& counters;
  OnConnection on_connection;
  TcpListener::ConnectionExecutor connection_executor;
  std::shared_ptr<spdlog::logger> log;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  // Shared with every ConnectionHold, which may outlive the listener.
  std::shared_ptr<std::atomic<std::size_t>> open = std::make_shared<std::atomic<std::size_t>>(0);
  std::vector<Endpoint> bound;

  State(asio::io_context& io_context, std::string service, std::vector<Endpoint> endpoints,
        std::vector<Cidr> allowed, std::size_t limit, Gate& service_gate,
        ListenerCounters& service_counters, OnConnection handler)
      : io(io_context),
        name(std::move(service)),
        listen(std::move(endpoints)),
        allow(std::move(allowed)),
        max_connections(limit),
        gate(service_gate),
        counters(service_counters),
        on_connection(std::move(handler)),
        log(logger(name)) {}

  // `hold` keeps the gate open for as long as the loop runs. Parameters are destroyed in reverse
  // order, so `hold` leaves the gate while `owner` still keeps it alive.
  static asio::awaitable<void> accept_loop([[maybe_unused]] std::shared_ptr<void> owner,
                                           std::shared_ptr<State> self, tcp::acceptor& acceptor,
                                           [[maybe_unused]] GateHolder hold) {
    co_await self->accept_connections(acceptor);
  }

  asio::awaitable<void> accept_connections(tcp::acceptor& acceptor) {
    for (;;) {
      tcp::socket socket(connection_executor ? connection_executor()
                                             : asio::any_io_executor(asio::make_strand(io)));
      error_code ec;
      co_await acceptor.async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
      if (!acceptor.is_open() || ec == asio::error::operation_aborted) co_return;
      if (ec) {
        // Out of descriptors and the like: back off briefly instead of spinning.
        counters.accept_errors.add();
        log->warn("accept failed: {}", ec.message());
        asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(100));
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      auto peer = socket.remote_endpoint(ec);
      if (ec) continue;
      auto local = socket.local_endpoint(ec);
      if (ec) continue;
      AcceptedConnection connection{std::move(socket), to_endpoint(peer), to_endpoint(local),
                                    ConnectionHold()};
      if (!allow.empty() && !contains_any(allow, connection.peer.address)) {
        counters.connections_refused.add();
        log->debug("refused {}: not in the allow list", connection.peer.to_string());
        continue;
      }
      if (open->load() >= max_connections) {
        counters.connections_over_limit.add();
        continue;
      }
      GateHolder in_gate(gate);
      if (!in_gate) co_return;  // stopping
      connection.hold = ConnectionHold(std::move(in_gate), open);
      counters.connections_accepted.add();
      on_connection(std::move(connection));
    }
  }
};

TcpListener::TcpListener(asio::io_context& io, std::string name, std::vector<Endpoint> listen,
                         std::vector<Cidr> allow, std::size_t max_connections, Gate& gate,
                         ListenerCounters& counters, OnConnection on_connection)
    : state_(std::make_shared<State>(io, std::move(name), std::move(listen), std::move(allow),
                                     max_connections, gate, counters, std::move(on_connection))) {}

TcpListener::~TcpListener() = default;

void TcpListener::set_connection_executor(ConnectionExecutor pick) {
  state_->connection_executor = std::move(pick);
}

void TcpListener::bind() {
  auto& s = *state_;
  for (const auto& endpoint : s.listen) {
    auto acceptor = std::make_unique<tcp::acceptor>(asio::make_strand(s.io));
    tcp::endpoint where(endpoint.address, endpoint.port);
    error_code ec;
    acceptor->open(where.protocol(), ec);
    if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && endpoint.address.is_v6() && endpoint.address.is_unspecified()) {
      acceptor->set_option(asio::ip::v6_only(ipv6_only(endpoint, s.listen)), ec);
    }
    if (!ec) acceptor->bind(where, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::system_error(ec, s.name + ": cannot listen on " + endpoint.to_string());
    s.bound.push_back(to_endpoint(acceptor->local_endpoint()));
    s.acceptors.push_back(std::move(acceptor));
  }
}

void TcpListener::start(std::string_view scheme, const std::shared_ptr<void>& owner) {
  auto& s = *state_;
  for (std::size_t i = 0; i < s.acceptors.size(); ++i) {
    auto& acceptor = *s.acceptors[i];
    spawn_logged(acceptor.get_executor(),
                 State::accept_loop(owner, state_, acceptor, GateHolder(s.gate)), s.log,
                 "accept loop failed");
    s.log->info("listening on {}://{}", scheme, s.bound[i].to_string());
  }
}

void TcpListener::close() {
  for (auto& acceptor : state_->acceptors) {
    asio::post(acceptor->get_executor(), [state = state_, a = acceptor.get()] {
      error_code ignored;
      a->close(ignored);
    });
  }
}

const std::vector<Endpoint>& TcpListener::bound() const { return state_->bound; }

std::size_t TcpListener::open_connections() const { return state_->open->load(); }

}  // namespace pullthrough::core
