// Waiting in a test for what another thread does: polls `holds` every 2 ms until it is true or
// `limit` has passed. True when it held; checked once more at the deadline.
#pragma once

#include <chrono>
#include <thread>

namespace pullthrough::core::testing {

template <typename Predicate>
bool eventually(Predicate holds, std::chrono::milliseconds limit = std::chrono::seconds(3)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!holds()) {
    if (std::chrono::steady_clock::now() >= deadline) return holds();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace pullthrough::core::testing
