#include "proxy/upstream/pool.hpp"

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/steady_timer.hpp>

namespace pullthrough::proxy {

// Shared with the sweep timer's handler, which holds it weakly.
struct ConnectionPool::State : std::enable_shared_from_this<ConnectionPool::State> {
  const core::Clock& clock;
  const std::size_t max_idle_per_host;
  const std::chrono::milliseconds idle_timeout;

  // Guards everything below.
  mutable std::mutex mutex;
  bool shut_down = false;
  std::map<std::string, std::vector<std::unique_ptr<Connection>>> idle;
  boost::asio::steady_timer sweep_timer;
  bool sweep_scheduled = false;

  State(boost::asio::io_context& io, const core::Clock& time, std::size_t per_host,
        std::chrono::milliseconds timeout)
      : clock(time), max_idle_per_host(per_host), idle_timeout(timeout), sweep_timer(io) {}

  void schedule_sweep_locked() {
    if (sweep_scheduled || shut_down) return;
    sweep_scheduled = true;
    sweep_timer.expires_after(idle_timeout);
    std::weak_ptr<State> weak = weak_from_this();
    sweep_timer.async_wait([weak](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto self = weak.lock()) self->sweep();
    });
  }

  void sweep() {
    // Destroyed (closed) after the lock is released.
    std::vector<std::unique_ptr<Connection>> expired;
    std::lock_guard lock(mutex);
    sweep_scheduled = false;
    auto now = clock.now();
    for (auto it = idle.begin(); it != idle.end();) {
      auto& list = it->second;
      for (auto& connection : list) {
        if (now - connection->idle_since >= idle_timeout) expired.push_back(std::move(connection));
      }
      std::erase(list, nullptr);
      it = list.empty() ? idle.erase(it) : std::next(it);
    }
    if (!idle.empty()) schedule_sweep_locked();
  }
};

ConnectionPool::ConnectionPool(boost::asio::io_context& io, const core::Clock& clock,
                               std::size_t max_idle_per_host,
                               std::chrono::milliseconds idle_timeout)
    : state_(std::make_shared<State>(io, clock, max_idle_per_host, idle_timeout)) {}

ConnectionPool::~ConnectionPool() { shutdown(); }

std::unique_ptr<Connection> ConnectionPool::take(const Origin& origin) {
  std::vector<std::unique_ptr<Connection>> expired;
  std::unique_ptr<Connection> found;
  std::lock_guard lock(state_->mutex);
  auto it = state_->idle.find(origin.key());
  if (it == state_->idle.end()) return nullptr;
  auto now = state_->clock.now();
  // The most recently used first: it is the least likely to have been closed by the server. One
  // the server has closed (an idle limit shorter than ours, say) would fail the request sent on
  // it and cost a retry: it is dropped here instead.
  while (!it->second.empty() && !found) {
    auto connection = std::move(it->second.back());
    it->second.pop_back();
    if (now - connection->idle_since >= state_->idle_timeout || connection->peer_closed()) {
      expired.push_back(std::move(connection));
    } else {
      found = std::move(connection);
    }
  }
  if (it->second.empty()) state_->idle.erase(it);
  return found;
}

void ConnectionPool::put(std::unique_ptr<Connection> connection) {
  std::unique_ptr<Connection> dropped;
  std::lock_guard lock(state_->mutex);
  auto& list = state_->idle[connection->key()];
  if (state_->shut_down || list.size() >= state_->max_idle_per_host ||
      connection->buffered() != 0) {
    dropped = std::move(connection);
    if (list.empty()) state_->idle.erase(dropped->key());
    return;
  }
  connection->idle_since = state_->clock.now();
  list.push_back(std::move(connection));
  state_->schedule_sweep_locked();
}

void ConnectionPool::shutdown() {
  std::map<std::string, std::vector<std::unique_ptr<Connection>>> closing;
  std::lock_guard lock(state_->mutex);
  state_->shut_down = true;
  closing.swap(state_->idle);
  state_->sweep_timer.cancel();
  state_->sweep_scheduled = false;
}

bool ConnectionPool::shut_down() const {
  std::lock_guard lock(state_->mutex);
  return state_->shut_down;
}

std::size_t ConnectionPool::idle() const {
  std::lock_guard lock(state_->mutex);
  std::size_t count = 0;
  for (const auto& [key, list] : state_->idle) count += list.size();
  return count;
}

}  // namespace pullthrough::proxy
