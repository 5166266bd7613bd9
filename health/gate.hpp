// Whether the DNS responder may point clients at the cache, and at which cache hosts. The health
// monitor drives it; until a cache host has proved healthy the gate is closed and every name is
// forwarded, so clients use the real registries.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "core/net.hpp"

namespace pullthrough::health {

class HealthGate {
 public:
  using Addresses = std::vector<core::IpAddress>;
  virtual ~HealthGate() = default;
  // The healthy cache hosts' addresses, in the order to hand out; empty while the gate is closed.
  // Called for every intercepted query, from any thread: must be cheap and must not block long.
  // The returned list is immutable and stays valid while held.
  virtual std::shared_ptr<const Addresses> healthy() const = 0;
  // Moves whenever healthy() would return another list. Values are unique in the process, so a
  // caller may keep what healthy() returned for as long as generation() still gives the value it
  // read before calling healthy(). Must be one atomic load: the responder asks on every query.
  virtual std::uint64_t generation() const = 0;

 protected:
  static std::uint64_t next_generation() {
    static std::atomic<std::uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
  }
};

// A gate set from outside: by the health monitor, or by tests.
class SwitchableHealthGate final : public HealthGate {
 public:
  SwitchableHealthGate() : healthy_(std::make_shared<const Addresses>()) {}

  std::shared_ptr<const Addresses> healthy() const override {
    std::lock_guard lock(mutex_);
    return healthy_;
  }

  std::uint64_t generation() const override { return generation_.load(std::memory_order_acquire); }

  // Opens the gate for `addresses` (closes it when empty).
  void set(Addresses addresses) {
    auto next = std::make_shared<const Addresses>(std::move(addresses));
    std::lock_guard lock(mutex_);
    healthy_ = std::move(next);
    generation_.store(next_generation(), std::memory_order_release);
  }

  void close() { set({}); }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const Addresses> healthy_;
  std::atomic<std::uint64_t> generation_{next_generation()};
};

}  // namespace pullthrough::health
