// Keep-alive for upstream connections: idle connections kept per scheme://host:port, a bounded
// number each, the most recently used handed out first, and closed after an idle timeout (by a
// sweep that runs while any are kept). Thread-safe.
#pragma once

#include "core/asio.hpp"

#include <chrono>
#include <cstddef>
#include <memory>

#include <boost/asio/io_context.hpp>

#include "core/clock.hpp"
#include "proxy/upstream/connection.hpp"
#include "proxy/upstream/url.hpp"

namespace pullthrough::proxy {

class ConnectionPool {
 public:
  // `clock` must outlive the pool.
  ConnectionPool(boost::asio::io_context& io, const core::Clock& clock,
                 std::size_t max_idle_per_host, std::chrono::milliseconds idle_timeout);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // An idle connection to `origin` younger than the idle timeout, or null.
  std::unique_ptr<Connection> take(const Origin& origin);
  // Keeps `connection` for reuse, or closes it: when the pool is shut down or full for its
  // origin, or when it holds bytes past its last response.
  void put(std::unique_ptr<Connection> connection);
  // Closes every idle connection; later puts close theirs. Safe from any thread.
  void shutdown();
  bool shut_down() const;
  std::size_t idle() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace pullthrough::proxy
