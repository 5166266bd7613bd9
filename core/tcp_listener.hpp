// Accepting TCP connections for a service: one acceptor per configured address, the allow list,
// a bound on open connections, and the service's gate so that stop() can wait for them. What to do
// with an accepted connection is the service's business.
#pragma once

#include "core/asio.hpp"

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/counters.hpp"
#include "core/gate.hpp"
#include "core/net.hpp"

namespace pullthrough::core {

#define PULLTHROUGH_LISTENER_COUNTERS(COUNTER)                                       \
  COUNTER(connections_accepted, "connections accepted")                              \
  COUNTER(connections_refused, "connections refused: client outside the allow list") \
  COUNTER(connections_over_limit, "connections closed at once: too many open")       \
  COUNTER(accept_errors, "accept() failures, such as running out of descriptors")

struct ListenerCounters {
  PULLTHROUGH_LISTENER_COUNTERS(PULLTHROUGH_COUNTER_FIELD)
  PULLTHROUGH_COUNTER_VISITOR(PULLTHROUGH_LISTENER_COUNTERS)
};

// What an accepted connection holds until it is done with: its place among the listener's
// max_connections, and the service's gate, so that the service's stop() waits for it. Counted
// apart from the gate, since the gate has other holders too (accept loops, UDP sockets).
class ConnectionHold {
 public:
  ConnectionHold() = default;
  // Takes one place of `open`.
  ConnectionHold(GateHolder gate, std::shared_ptr<std::atomic<std::size_t>> open)
      : gate_(std::move(gate)), open_(std::move(open)) {
    open_->fetch_add(1);
  }
  ConnectionHold(ConnectionHold&&) noexcept = default;
  ConnectionHold& operator=(ConnectionHold&& other) noexcept {
    if (this != &other) {
      release();
      gate_ = std::move(other.gate_);
      open_ = std::move(other.open_);
    }
    return *this;
  }
  ConnectionHold(const ConnectionHold&) = delete;
  ConnectionHold& operator=(const ConnectionHold&) = delete;
  ~ConnectionHold() { release(); }

  explicit operator bool() const { return static_cast<bool>(gate_); }

 private:
  void release() {
    if (open_) std::exchange(open_, nullptr)->fetch_sub(1);
    gate_ = GateHolder();
  }
  GateHolder gate_;
  std::shared_ptr<std::atomic<std::size_t>> open_;
};

struct AcceptedConnection {
  // On its own strand, or on an event loop run by one thread (set_connection_executor): either
  // way the service may drive it from any thread through its executor.
  boost::asio::ip::tcp::socket socket;
  Endpoint peer;
  Endpoint local;
  ConnectionHold hold;
};

class TcpListener {
 public:
  // Runs on the accepting thread; should hand the connection to a coroutine and return.
  using OnConnection = std::function<void(AcceptedConnection)>;

  // `name` names the service in logs. `allow` empty admits every client. `gate` and `counters`
  // belong to the service and must outlive every coroutine this listener starts.
  TcpListener(boost::asio::io_context& io, std::string name, std::vector<Endpoint> listen,
              std::vector<Cidr> allow, std::size_t max_connections, Gate& gate,
              ListenerCounters& counters, OnConnection on_connection);
  ~TcpListener();
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;

  // Where accepted connections live: by default each on a strand of the listener's io_context;
  // a service with event loops of its own (event_loops.hpp) hands them to those. Called on the
  // accepting thread for each socket made to wait for the next connection; set before start().
  using ConnectionExecutor = std::function<boost::asio::any_io_executor()>;
  void set_connection_executor(ConnectionExecutor pick);

  // Binds every address; throws std::system_error naming the one that failed. An IPv6 wildcard
  // is IPv6-only when the same port also has an IPv4 address configured, dual-stack otherwise.
  void bind();
  // Starts accepting. `scheme` is only for the log line ("http", "https"). `owner` (which owns
  // the gate and counters) is kept alive by the accept loops until they end.
  void start(std::string_view scheme, const std::shared_ptr<void>& owner);
  // Closes the acceptors; accept loops end and leave the gate. Safe from any thread.
  void close();

  // The addresses actually bound (port 0 becomes the kernel's choice). Valid after bind().
  const std::vector<Endpoint>& bound() const;
  // Connections accepted and not yet done with.
  std::size_t open_connections() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace pullthrough::core
