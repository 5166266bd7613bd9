// EventLoops: each loop is run by one thread of its own, next() hands out the loops in turn, an
// idle loop keeps running, and work left queued at destruction is destroyed, not run.
#include "core/event_loops.hpp"

#include "core/asio.hpp"

#include <atomic>
#include <future>
#include <memory>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

namespace pullthrough::core {
namespace {

// The thread that runs a handler posted to `executor`.
std::thread::id thread_of(const boost::asio::io_context::executor_type& executor) {
  std::promise<std::thread::id> ran;
  boost::asio::post(executor, [&] { ran.set_value(std::this_thread::get_id()); });
  auto done = ran.get_future();
  if (done.wait_for(std::chrono::seconds(5)) != std::future_status::ready) return {};
  return done.get();
}

TEST(EventLoopsTest, EachLoopIsRunByAThreadOfItsOwnAndNextTakesThemInTurn) {
  EventLoops loops("test", 3);
  ASSERT_EQ(loops.size(), 3U);
  loops.start();
  std::vector<std::thread::id> threads;
  for (int i = 0; i < 6; ++i) threads.push_back(thread_of(loops.next()));
  std::set<std::thread::id> distinct(threads.begin(), threads.end());
  EXPECT_EQ(distinct.size(), 3U);
  EXPECT_EQ(distinct.count(std::this_thread::get_id()), 0U);
  EXPECT_EQ(distinct.count(std::thread::id{}), 0U);  // every handler ran
  for (int i = 0; i < 3; ++i) EXPECT_EQ(threads[i], threads[i + 3]) << "loop " << i;
}

TEST(EventLoopsTest, AllWorkPostedToOneLoopRunsOnOneThreadInOrder) {
  EventLoops loops("test", 2);
  loops.start();
  auto executor = loops.next();
  std::vector<int> order;
  std::set<std::thread::id> threads;
  std::promise<void> done;
  for (int i = 0; i < 1000; ++i) {
    boost::asio::post(executor, [&, i] {
      order.push_back(i);
      threads.insert(std::this_thread::get_id());
      if (i == 999) done.set_value();
    });
  }
  ASSERT_EQ(done.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  ASSERT_EQ(order.size(), 1000U);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(order[i], i);
  EXPECT_EQ(threads.size(), 1U);
}

TEST(EventLoopsTest, AnIdleLoopKeepsRunningUntilStopped) {
  EventLoops loops("test", 1);
  loops.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_NE(thread_of(loops.next()), std::thread::id{});
  loops.stop();
  loops.stop();  // a second stop does nothing
}

TEST(EventLoopsTest, AHandlerThatThrowsDoesNotStopItsLoop) {
  EventLoops loops("test", 1);
  loops.start();
  auto executor = loops.next();
  boost::asio::post(executor, [] { throw std::runtime_error("a handler's own failure"); });
  EXPECT_NE(thread_of(executor), std::thread::id{});
}

TEST(EventLoopsTest, WorkLeftQueuedIsDestroyedWithoutRunning) {
  auto sentinel = std::make_shared<int>(0);
  std::atomic<bool> ran{false};
  {
    EventLoops loops("test", 2);  // never started: nothing runs what is posted
    boost::asio::post(loops.next(), [held = sentinel, &ran] { ran = true; });
    EXPECT_EQ(sentinel.use_count(), 2);
  }
  EXPECT_FALSE(ran);
  EXPECT_EQ(sentinel.use_count(), 1);
}

TEST(EventLoopsTest, ZeroLoopsMeansOne) {
  EventLoops loops("test", 0);
  EXPECT_EQ(loops.size(), 1U);
}

}  // namespace
}  // namespace pullthrough::core
