// Whether the DNS responder may point clients at the cache, and at which cache hosts. The health
// monitor drives it; until a cache host has proved healthy the gate is closed and every name is
// forwarded, so clients use the real registries.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "core/net.hpp"

namespace pullthrough::dns {

class HealthGate {
 public:
  using Addresses = std::vector<core::IpAddress>;
  virtual ~HealthGate() = default;
  // The healthy cache hosts' addresses, in the order to hand out; empty while the gate is closed.
  // Called for every intercepted query, from any thread: must be cheap and must not block long.
  // The returned list is immutable and stays valid while held.
  virtual std::shared_ptr<const Addresses> healthy() const = 0;
};

// A gate set from outside: by the health monitor, or by tests.
class SwitchableHealthGate final : public HealthGate {
 public:
  SwitchableHealthGate() : healthy_(std::make_shared<const Addresses>()) {}

  std::shared_ptr<const Addresses> healthy() const override {
    std::lock_guard lock(mutex_);
    return healthy_;
  }

  // Opens the gate for `addresses` (closes it when empty).
  void set(Addresses addresses) {
    auto next = std::make_shared<const Addresses>(std::move(addresses));
    std::lock_guard lock(mutex_);
    healthy_ = std::move(next);
  }

  void close() { set({}); }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const Addresses> healthy_;
};

}  // namespace pullthrough::dns
