#include "core/counters.hpp"

#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace pullthrough::core {
namespace {

TEST(CounterTest, SumsWhatEveryThreadAdds) {
  Counter counter;
  constexpr int kThreads = 12;  // more threads than slots: some share one
  constexpr int kAdds = 10000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&counter, t] {
      for (int i = 0; i < kAdds; ++i) counter.add(static_cast<std::uint64_t>(t % 3));
    });
  }
  for (auto& t : threads) t.join();
  // Threads t = 0..11 add t % 3 each time: four threads each of 0, 1 and 2.
  EXPECT_EQ(counter.value(), static_cast<std::uint64_t>(kAdds) * 4 * (0 + 1 + 2));
}

#define TEST_COUNTERS(COUNTER)      \
  COUNTER(apples, "apples counted") \
  COUNTER(pears, "pears counted")

struct TestCounters {
  TEST_COUNTERS(PULLTHROUGH_COUNTER_FIELD)
  PULLTHROUGH_COUNTER_VISITOR(TEST_COUNTERS)
};

TEST(CounterTest, VisitorNamesEveryCounterInOrder) {
  TestCounters counters;
  counters.apples.add(3);
  counters.pears.add();
  std::string seen;
  counters.visit([&](std::string_view name, std::string_view help, std::uint64_t value) {
    seen += std::string(name) + "=" + std::to_string(value) + " (" + std::string(help) + ");";
  });
  EXPECT_EQ(seen, "apples=3 (apples counted);pears=1 (pears counted);");
}

}  // namespace
}  // namespace pullthrough::core
