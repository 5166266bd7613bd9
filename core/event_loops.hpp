// Event loops of their own for a service's connections: one io_context per thread, each run by
// that thread alone, the thread pinned to a CPU. A connection handed to a loop lives on it until it
// closes, so its handlers never wait for another thread to wake up and never need a strand, and
// its state stays in one CPU's cache (the shard-per-core design of Seastar and nginx's workers).
// Work may still be posted to a loop from any thread.
#pragma once

#include "core/asio.hpp"

#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace pullthrough::core {

class EventLoops {
 public:
  // `count` loops (at least one), their threads named `name`-0, `name`-1, ... and pinned to the
  // CPUs this process may run on, in turn.
  EventLoops(std::string name, unsigned count);
  // Stops the loops, joins their threads and then destroys the work still queued on them without
  // running it (abandoned coroutine frames): everything that work refers to must still be alive.
  ~EventLoops();
  EventLoops(const EventLoops&) = delete;
  EventLoops& operator=(const EventLoops&) = delete;

  // Starts the threads. Until stop(), each loop runs even while it has nothing to do, and goes on
  // after a handler throws (logged).
  void start();
  // Ends the threads at once, whatever is queued, and waits for them. Safe to call twice.
  void stop();

  std::size_t size() const { return loops_.size(); }
  // The loop for the next connection: each in turn.
  boost::asio::io_context::executor_type next();

 private:
  // shutdown(), which destroys queued handlers without running them, is protected in Asio.
  struct LoopContext : boost::asio::io_context {
    LoopContext() : boost::asio::io_context(1) {}
    using boost::asio::io_context::shutdown;
  };
  struct Loop {
    LoopContext io;
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> busy;
    std::thread thread;
  };
  std::string name_;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::atomic<std::size_t> turn_{0};
};

}  // namespace pullthrough::core
