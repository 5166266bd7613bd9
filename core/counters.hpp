// Counters are declared as one list per component, so that the metrics endpoint can export every
// one of them with its name and help text without a second list to keep in step:
//
//   #define PULLTHROUGH_FRONT_DOOR_COUNTERS(COUNTER)
//     COUNTER(connections_accepted, "TLS connections accepted")   (with a line continuation)
//   struct FrontDoorCounters {
//     PULLTHROUGH_FRONT_DOOR_COUNTERS(PULLTHROUGH_COUNTER_FIELD)
//     PULLTHROUGH_COUNTER_VISITOR(PULLTHROUGH_FRONT_DOOR_COUNTERS)
//   };
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pullthrough::core {

// Monotonic, lock-free, safe from any thread. Relaxed ordering: a counter orders nothing.
//
// Hot paths bump several counters per packet from every thread. One shared atomic would bounce
// its cache line between cores on each add, so each counter keeps one cache line per slot and a
// thread always adds to its own slot; reading sums the slots.
class Counter {
 public:
  void add(std::uint64_t n = 1) { slots_[slot()].value.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const {
    std::uint64_t sum = 0;
    for (const auto& s : slots_) sum += s.value.load(std::memory_order_relaxed);
    return sum;
  }

 private:
  static constexpr std::size_t kSlots = 8;
  struct alignas(64) Slot {
    std::atomic<std::uint64_t> value{0};
  };
  // Threads take slots in the order they first count: the first kSlots threads never share.
  static std::size_t slot() {
    static std::atomic<std::size_t> next{0};
    thread_local std::size_t mine = next.fetch_add(1, std::memory_order_relaxed) % kSlots;
    return mine;
  }
  std::array<Slot, kSlots> slots_{};
};

}  // namespace pullthrough::core

#define PULLTHROUGH_COUNTER_FIELD(name, help) ::pullthrough::core::Counter name;
#define PULLTHROUGH_COUNTER_VISIT(name, help) \
  visitor(std::string_view(#name), std::string_view(help), (name).value());
// visit(visitor) calls visitor(name, help, value) for every counter of the list, in order.
#define PULLTHROUGH_COUNTER_VISITOR(LIST) \
  template <typename Visitor>             \
  void visit(Visitor&& visitor) const {   \
    LIST(PULLTHROUGH_COUNTER_VISIT)       \
  }
