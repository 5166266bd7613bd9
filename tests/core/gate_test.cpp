#include "core/gate.hpp"

#include <gtest/gtest.h>

namespace pullthrough::core {
namespace {

TEST(GateTest, DrainedAtOnceWhenIdle) {
  Gate gate;
  int drained = 0;
  gate.close([&] { ++drained; });
  EXPECT_EQ(drained, 1);
  EXPECT_FALSE(gate.enter());
}

TEST(GateTest, DrainedAtTheLastLeave) {
  Gate gate;
  int drained = 0;
  {
    GateHolder a(gate);
    GateHolder b(gate);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(gate.count(), 2U);
    gate.close([&] { ++drained; });
    EXPECT_TRUE(gate.closed());
    GateHolder refused(gate);
    EXPECT_FALSE(refused);
    a = GateHolder();
    EXPECT_EQ(drained, 0);
  }
  EXPECT_EQ(drained, 1);
  EXPECT_EQ(gate.count(), 0U);
}

TEST(GateTest, MovedHolderLeavesOnce) {
  Gate gate;
  {
    GateHolder a(gate);
    GateHolder b(std::move(a));
    EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): checking the moved-from state
    EXPECT_EQ(gate.count(), 1U);
  }
  EXPECT_EQ(gate.count(), 0U);
}

}  // namespace
}  // namespace pullthrough::core
