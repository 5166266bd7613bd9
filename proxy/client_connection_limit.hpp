// proxy.max_connections_per_client: how many TLS connections each client address holds open, so
// that one client (a runaway CI job, a scanner, a leak in a client's pool) cannot take every place
// of proxy.max_connections and lock the rest of the LAN out of the cache.
#pragma once

#include <cstddef>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "core/net.hpp"

namespace pullthrough::proxy {

class ClientConnectionLimit {
 public:
  // One connection's place among its client's; given back when destroyed. Must not outlive the
  // ClientConnectionLimit that handed it out. An empty one (no limit configured) holds nothing.
  class Place {
   public:
    Place() = default;
    Place(Place&& other) noexcept;
    Place& operator=(Place&& other) noexcept;
    Place(const Place&) = delete;
    Place& operator=(const Place&) = delete;
    ~Place();

   private:
    friend class ClientConnectionLimit;
    Place(ClientConnectionLimit& owner, const core::IpAddress& client)
        : owner_(&owner), client_(client) {}
    void release();

    ClientConnectionLimit* owner_ = nullptr;
    core::IpAddress client_;
  };

  // `per_client` 0: no limit, and nothing is tracked.
  explicit ClientConnectionLimit(std::size_t per_client) : per_client_(per_client) {}
  ClientConnectionLimit(const ClientConnectionLimit&) = delete;
  ClientConnectionLimit& operator=(const ClientConnectionLimit&) = delete;

  // A place for one more connection from `client`, or nullopt when it already holds
  // `per_client`. An IPv4-mapped IPv6 address counts as its IPv4 address. Safe from any thread;
  // one lock, and an allocation only for an address that had no connection open.
  std::optional<Place> admit(const core::IpAddress& client);

  // Addresses with at least one connection open: an address leaves the table with its last
  // connection, so the table never holds more entries than there are open connections.
  std::size_t clients() const;
  // Connections open from `client` (0 when no limit is configured).
  std::size_t open_from(const core::IpAddress& client) const;

 private:
  void release(const core::IpAddress& client);

  std::size_t per_client_;
  mutable std::mutex mutex_;
  std::unordered_map<core::IpAddress, std::size_t, core::IpAddressHash> open_;
};

}  // namespace pullthrough::proxy
