#include "core/thread_priority.hpp"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tests/core/eventually.hpp"

namespace pullthrough::core {
namespace {

using testing::eventually;

int this_thread_nice() {
  errno = 0;
  return getpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)));
}

// A thread that makes itself background, notes whether it may be raised, then runs `body`.
template <typename Body>
std::thread background_thread(bool& can_be_raised, Body body) {
  return std::thread([&can_be_raised, body = std::move(body)]() mutable {
    EXPECT_EQ(make_this_thread_background(), "");
    can_be_raised = background_can_be_raised();
    body();
  });
}

TEST(ThreadPriorityTest, ABackgroundThreadRunsIdleAtNiceTen) {
  const int policy_before = sched_getscheduler(0);
  std::string failed = "not run";
  int policy = -1;
  int nice = -1;
  std::thread background([&] {
    failed = make_this_thread_background();
    policy = sched_getscheduler(0);
    nice = this_thread_nice();
  });
  background.join();
  EXPECT_EQ(failed, "");
  EXPECT_EQ(policy, SCHED_IDLE);
  EXPECT_EQ(nice, 10);
  EXPECT_EQ(sched_getscheduler(0), policy_before) << "only the calling thread changes";
}

// A background thread takes the lock; the test's thread then waits for it. The holder sees
// itself raised to SCHED_BATCH while it is waited for, and idle again once it has unlocked.
TEST(ThreadPriorityTest, AWaiterRaisesABackgroundHolderUntilItUnlocks) {
  PriorityInheritanceMutex mutex;
  std::atomic<bool> locked{false};
  bool can_be_raised = false;
  bool idle_while_alone = false;
  bool raised = false;
  int nice_raised = -1;
  int policy_after = -1;
  std::thread background = background_thread(can_be_raised, [&] {
    mutex.lock();
    // Held with no waiter: it stays idle.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    idle_while_alone = sched_getscheduler(0) == SCHED_IDLE;
    locked = true;
    raised = eventually([] { return sched_getscheduler(0) == SCHED_BATCH; });
    nice_raised = this_thread_nice();
    mutex.unlock();
    policy_after = sched_getscheduler(0);
  });
  EXPECT_TRUE(eventually([&] { return locked.load(); }));
  mutex.lock();  // blocks until the background thread unlocks
  mutex.unlock();
  background.join();
  if (!can_be_raised) GTEST_SKIP() << "this process may not leave SCHED_IDLE (CAP_SYS_NICE)";
  EXPECT_TRUE(idle_while_alone);
  EXPECT_TRUE(raised);
  EXPECT_EQ(nice_raised, 10);
  EXPECT_EQ(policy_after, SCHED_IDLE);
}

TEST(ThreadPriorityTest, RaisedPriorityRunsABackgroundThreadAtBatchWhileItLives) {
  const int policy_before = sched_getscheduler(0);
  {
    RaisedPriority ignored;  // not a background thread: nothing changes
    EXPECT_EQ(sched_getscheduler(0), policy_before);
  }
  bool can_be_raised = false;
  int raised = -1;
  int nested_ended = -1;
  int after = -1;
  std::thread background = background_thread(can_be_raised, [&] {
    {
      RaisedPriority outer;
      {
        RaisedPriority inner;
        raised = sched_getscheduler(0);
      }
      nested_ended = sched_getscheduler(0);
    }
    after = sched_getscheduler(0);
  });
  background.join();
  if (!can_be_raised) GTEST_SKIP() << "this process may not leave SCHED_IDLE (CAP_SYS_NICE)";
  EXPECT_EQ(raised, SCHED_BATCH);
  EXPECT_EQ(nested_ended, SCHED_BATCH) << "the inner section does not lower the outer one";
  EXPECT_EQ(after, SCHED_IDLE);
}

// A raised background thread holds the mutex like any other: a waiter neither raises it nor
// has it lowered when it unlocks.
TEST(ThreadPriorityTest, ARaisedHolderStaysRaisedAfterAWaitedForUnlock) {
  PriorityInheritanceMutex mutex;
  std::atomic<bool> locked{false};
  bool can_be_raised = false;
  int after_unlock = -1;
  int after = -1;
  std::thread background = background_thread(can_be_raised, [&] {
    {
      RaisedPriority raised;
      mutex.lock();
      locked = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the test's thread waits
      mutex.unlock();
      after_unlock = sched_getscheduler(0);
    }
    after = sched_getscheduler(0);
  });
  EXPECT_TRUE(eventually([&] { return locked.load(); }));
  mutex.lock();
  mutex.unlock();
  background.join();
  if (!can_be_raised) GTEST_SKIP() << "this process may not leave SCHED_IDLE (CAP_SYS_NICE)";
  EXPECT_EQ(after_unlock, SCHED_BATCH);
  EXPECT_EQ(after, SCHED_IDLE);
}

// Threads of both kinds, contending: every increment is kept, and no background thread is left
// raised after its last unlock.
TEST(ThreadPriorityTest, ExcludesBackgroundAndOtherThreadsAlike) {
  PriorityInheritanceMutex mutex;
  constexpr int kThreads = 4;
  constexpr int kRounds = 20000;
  long counter = 0;
  std::vector<int> policies(kThreads, -1);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      if (t % 2 == 0) make_this_thread_background();
      for (int i = 0; i < kRounds; ++i) {
        std::lock_guard lock(mutex);
        counter = counter + 1;
      }
      policies[t] = sched_getscheduler(0);
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(counter, long{kThreads} * kRounds);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(policies[t], t % 2 == 0 ? SCHED_IDLE : SCHED_OTHER) << "thread " << t;
  }
}

}  // namespace
}  // namespace pullthrough::core
