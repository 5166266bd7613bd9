// Counts work in flight so that a service can stop accepting new work and learn when the old work
// is done (after Seastar's gate).
#pragma once

#include <utility>

#include <cstddef>
#include <functional>
#include <mutex>

namespace pullthrough::core {

class Gate {
 public:
  // Registers one unit of work. False once the gate is closed: the caller must not start it.
  bool enter() {
    std::lock_guard lock(mutex_);
    if (closed_) return false;
    ++count_;
    return true;
  }

  // Ends one unit of work. The last leave() after close() runs the drained callback on this thread.
  void leave() {
    std::function<void()> drained;
    {
      std::lock_guard lock(mutex_);
      if (--count_ == 0 && closed_) drained = std::move(drained_);
    }
    if (drained) drained();
  }

  // Refuses new work; `drained` runs once: now if nothing is in flight, else at the last leave().
  void close(std::function<void()> drained) {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
      if (count_ != 0) {
        drained_ = std::move(drained);
        return;
      }
    }
    if (drained) drained();
  }

  bool closed() const {
    std::lock_guard lock(mutex_);
    return closed_;
  }

  std::size_t count() const {
    std::lock_guard lock(mutex_);
    return count_;
  }

 private:
  mutable std::mutex mutex_;
  std::size_t count_ = 0;
  bool closed_ = false;
  std::function<void()> drained_;
};

// Leaves the gate when it goes out of scope; holds nothing when enter() failed.
class GateHolder {
 public:
  GateHolder() = default;
  explicit GateHolder(Gate& gate) : gate_(gate.enter() ? &gate : nullptr) {}
  GateHolder(GateHolder&& other) noexcept : gate_(std::exchange(other.gate_, nullptr)) {}
  GateHolder& operator=(GateHolder&& other) noexcept {
    if (this != &other) {
      release();
      gate_ = std::exchange(other.gate_, nullptr);
    }
    return *this;
  }
  GateHolder(const GateHolder&) = delete;
  GateHolder& operator=(const GateHolder&) = delete;
  ~GateHolder() { release(); }

  explicit operator bool() const { return gate_ != nullptr; }

 private:
  void release() {
    if (gate_ != nullptr) std::exchange(gate_, nullptr)->leave();
  }
  Gate* gate_ = nullptr;
};

}  // namespace pullthrough::core
