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

#include <atomic>
#include <cstdint>
#include <string_view>

namespace pullthrough::core {

// Monotonic, lock-free, safe from any thread. Relaxed ordering: a counter orders nothing.
class Counter {
 public:
  void add(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
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
