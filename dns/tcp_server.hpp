// DNS over TCP (RFC 7766): connections are accepted by a core::TcpListener (its connection bound
// and the owner's gate); each then carries pipelined queries, two length bytes before each
// (section 8), which go to the QueryHandler. Answers may complete in any order (section 6.2.1.1)
// and are written one after another as they do. What an answer says is the handler's business.
#pragma once

#include "core/asio.hpp"

#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

#include "core/gate.hpp"
#include "core/net.hpp"
#include "core/tcp_listener.hpp"
#include "dns/query_handler.hpp"

namespace pullthrough::dns {

// How many connections at once, how many queries a connection may have waiting for answers, how
// long a connection may sit idle between queries, and how long a query (after its length) or a
// write may take (RFC 7766 section 6.2).
struct TcpLimits {
  std::size_t max_connections = 1024;
  std::size_t max_in_flight = 64;
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(10);
  std::chrono::milliseconds read_timeout = std::chrono::seconds(10);
};

class TcpServer {
 public:
  // `gate` and `counters` belong to the owner given to start(), as does the handler's context.
  TcpServer(boost::asio::io_context& io, std::vector<core::Endpoint> listen, TcpLimits limits,
            QueryHandler handler, core::Gate& gate, core::ListenerCounters& counters);
  ~TcpServer();
  TcpServer(const TcpServer&) = delete;
  TcpServer& operator=(const TcpServer&) = delete;

  // Binds every address; throws std::system_error naming the one that failed.
  void bind();
  // Starts accepting. Accept loops and connections hold `owner` until they end.
  void start(const std::shared_ptr<void>& owner);
  // Closes the acceptors and cancels every connection's reads and writes; answers still in flight
  // are dropped with their connection. Safe from any thread.
  void stop();

  // The addresses actually bound (port 0 becomes the kernel's choice). Valid after bind().
  const std::vector<core::Endpoint>& bound() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace pullthrough::dns
