#include "proxy/client_connection_limit.hpp"

#include <utility>

namespace pullthrough::proxy {

ClientConnectionLimit::Place::Place(Place&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)), client_(other.client_) {}

ClientConnectionLimit::Place& ClientConnectionLimit::Place::operator=(Place&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = std::exchange(other.owner_, nullptr);
    client_ = other.client_;
  }
  return *this;
}

ClientConnectionLimit::Place::~Place() { release(); }

void ClientConnectionLimit::Place::release() {
  if (owner_ != nullptr) std::exchange(owner_, nullptr)->release(client_);
}

std::optional<ClientConnectionLimit::Place> ClientConnectionLimit::admit(
    const core::IpAddress& client) {
  if (per_client_ == 0) return Place();
  auto address = core::unmapped(client);
  std::lock_guard lock(mutex_);
  auto it = open_.try_emplace(address, 0).first;  // a new entry starts below any limit
  if (it->second >= per_client_) return std::nullopt;
  ++it->second;
  return Place(*this, address);
}

void ClientConnectionLimit::release(const core::IpAddress& client) {
  std::lock_guard lock(mutex_);
  auto it = open_.find(client);
  if (it == open_.end()) return;
  if (--it->second == 0) open_.erase(it);
}

std::size_t ClientConnectionLimit::clients() const {
  std::lock_guard lock(mutex_);
  return open_.size();
}

std::size_t ClientConnectionLimit::open_from(const core::IpAddress& client) const {
  std::lock_guard lock(mutex_);
  auto it = open_.find(core::unmapped(client));
  return it == open_.end() ? 0 : it->second;
}

}  // namespace pullthrough::proxy
