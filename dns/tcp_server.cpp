#include "dns/tcp_server.hpp"

#include "core/asio.hpp"

#include <array>
#include <deque>
#include <list>
#include <mutex>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/logging.hpp"
#include "core/spawn.hpp"

namespace pullthrough::dns {
namespace {

using asio::ip::tcp;

constexpr std::size_t kMaxMessage = 65535;  // what two length bytes can announce

}  // namespace

struct TcpServer::State : std::enable_shared_from_this<TcpServer::State> {
  // One connection and its queue of answers, all driven on the socket's strand. Each deadline is
  // armed only while its operation is pending: a timer left waiting would keep the io_context
  // from running out of work after stop().
  struct Connection {
    tcp::socket socket;
    asio::steady_timer read_deadline{socket.get_executor()};
    asio::steady_timer write_deadline{socket.get_executor()};
    std::deque<std::vector<std::uint8_t>> queue;
    bool writing = false;
    std::size_t in_flight = 0;
    std::chrono::milliseconds write_timeout;
    Connection(tcp::socket s, std::chrono::milliseconds timeout)
        : socket(std::move(s)), write_timeout(timeout) {}
  };
  using ConnectionPtr = std::shared_ptr<Connection>;

  TcpLimits limits;
  QueryHandler handler;
  std::shared_ptr<spdlog::logger> log = core::logger("dns");
  std::weak_ptr<void> owner;
  std::unique_ptr<core::TcpListener> acceptor;
  std::mutex mutex;
  std::list<ConnectionPtr> connections;

  State(TcpLimits tcp_limits, QueryHandler query_handler)
      : limits(tcp_limits), handler(query_handler) {}

  // Closes the connection when `timer` expires before the operation it guards completes and
  // cancels it. A completion and an expiry can cross: a handler that finds the timer re-armed
  // for a later operation leaves the socket alone.
  static void close_at_deadline(asio::steady_timer& timer, std::chrono::milliseconds after,
                                const ConnectionPtr& connection) {
    timer.expires_after(after);
    timer.async_wait([&timer, connection](const error_code& ec) {
      if (ec || timer.expiry() > asio::steady_timer::clock_type::now()) return;
      error_code ignored;
      connection->socket.close(ignored);
    });
  }

  void on_connection(core::AcceptedConnection accepted) {
    auto keep = owner.lock();
    if (!keep) return;  // the owner is going: the hold closes the socket
    auto connection = std::make_shared<Connection>(std::move(accepted.socket), limits.read_timeout);
    auto executor = connection->socket.get_executor();
    core::spawn_logged(executor,
                       session(shared_from_this(), std::move(keep), connection, accepted.peer,
                               std::move(accepted.hold)),
                       log, "dns tcp connection dropped");
  }

  static void queue_answer(const ConnectionPtr& connection, std::vector<std::uint8_t> answer) {
    if (answer.size() > kMaxMessage) return;
    std::vector<std::uint8_t> framed;
    framed.reserve(answer.size() + 2);
    framed.push_back(static_cast<std::uint8_t>(answer.size() >> 8));
    framed.push_back(static_cast<std::uint8_t>(answer.size() & 0xFF));
    framed.insert(framed.end(), answer.begin(), answer.end());
    connection->queue.push_back(std::move(framed));
    write_next(connection);
  }

  static void write_next(const ConnectionPtr& connection) {
    if (connection->writing || connection->queue.empty()) return;
    connection->writing = true;
    close_at_deadline(connection->write_deadline, connection->write_timeout, connection);
    asio::async_write(connection->socket, asio::buffer(connection->queue.front()),
                      [connection](const error_code& ec, std::size_t) {
                        connection->write_deadline.cancel();
                        connection->writing = false;
                        connection->queue.pop_front();
                        if (ec) {
                          connection->queue.clear();
                          error_code ignored;
                          connection->socket.close(ignored);
                          return;
                        }
                        write_next(connection);
                      });
  }

  // Reads `buffer` whole within `timeout`.
  static asio::awaitable<error_code> read_within(ConnectionPtr connection,
                                                 asio::mutable_buffer buffer,
                                                 std::chrono::milliseconds timeout) {
    error_code ec;
    close_at_deadline(connection->read_deadline, timeout, connection);
    co_await asio::async_read(connection->socket, buffer,
                              asio::redirect_error(asio::use_awaitable, ec));
    connection->read_deadline.cancel();
    co_return ec;
  }

  static asio::awaitable<void> session(std::shared_ptr<State> self,
                                       [[maybe_unused]] std::shared_ptr<void> owner,
                                       ConnectionPtr connection, core::Endpoint peer,
                                       [[maybe_unused]] core::ConnectionHold hold) {
    std::list<ConnectionPtr>::iterator registered;
    {
      std::lock_guard lock(self->mutex);
      registered = self->connections.insert(self->connections.end(), connection);
    }
    auto executor = connection->socket.get_executor();
    std::vector<std::uint8_t> message;
    for (;;) {
      std::array<std::uint8_t, 2> length_bytes{};
      auto ec =
          co_await read_within(connection, asio::buffer(length_bytes), self->limits.idle_timeout);
      if (ec) break;
      std::size_t length = (std::size_t{length_bytes[0]} << 8) | length_bytes[1];
      if (length == 0) break;
      message.resize(length);
      ec = co_await read_within(connection, asio::buffer(message), self->limits.read_timeout);
      if (ec) break;
      if (connection->in_flight >= self->limits.max_in_flight)
        break;  // a client that never reads answers
      std::vector<std::uint8_t> now;
      auto outcome = self->handler(message, peer, true, now, [&] {
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
      std::lock_guard lock(self->mutex);
      self->connections.erase(registered);
    }
    // Answers still in flight are written if the client keeps reading; the socket closes when the
    // last handler lets go of the connection.
  }

  void stop() {
    acceptor->close();
    std::lock_guard lock(mutex);
    for (auto& connection : connections) {
      asio::post(connection->socket.get_executor(), [connection] {
        error_code ignored;
        connection->socket.cancel(ignored);
      });
    }
  }
};

TcpServer::TcpServer(asio::io_context& io, std::vector<core::Endpoint> listen, TcpLimits limits,
                     QueryHandler handler, core::Gate& gate, core::ListenerCounters& counters)
    : state_(std::make_shared<State>(limits, handler)) {
  std::weak_ptr<State> weak = state_;
  state_->acceptor = std::make_unique<core::TcpListener>(
      io, "dns", std::move(listen), std::vector<core::Cidr>{}, limits.max_connections, gate,
      counters, [weak](core::AcceptedConnection connection) {
        if (auto state = weak.lock()) state->on_connection(std::move(connection));
      });
}

TcpServer::~TcpServer() = default;

void TcpServer::bind() { state_->acceptor->bind(); }

void TcpServer::start(const std::shared_ptr<void>& owner) {
  state_->owner = owner;
  state_->acceptor->start("tcp", owner);
}

void TcpServer::stop() { state_->stop(); }

const std::vector<core::Endpoint>& TcpServer::bound() const { return state_->acceptor->bound(); }

}  // namespace pullthrough::dns
