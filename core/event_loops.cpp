#include "core/event_loops.hpp"

#include <utility>

#include <pthread.h>
#include <sched.h>

#include "core/logging.hpp"

namespace pullthrough::core {
namespace {

// The CPUs this process may run on, in order (all of them when the mask cannot be read).
std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
    }
  }
  return cpus;
}

}  // namespace

EventLoops::EventLoops(std::string name, unsigned count) : name_(std::move(name)) {
  if (count == 0) count = 1;
  for (unsigned i = 0; i < count; ++i) loops_.push_back(std::make_unique<Loop>());
}

EventLoops::~EventLoops() {
  stop();
  // shutdown() destroys the handlers still queued, and with them any coroutine frames, while the
  // objects they refer to are alive; the io_contexts' destructors would do it later.
  for (auto& loop : loops_) loop->io.shutdown();
}

void EventLoops::start() {
  auto cpus = allowed_cpus();
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    Loop& loop = *loops_[i];
    if (loop.thread.joinable()) continue;
    loop.busy.emplace(loop.io.get_executor());
    std::optional<int> cpu;
    if (cpus.size() > 1) cpu = cpus[i % cpus.size()];
    loop.thread = std::thread([this, &loop, i, cpu] {
      std::string thread_name = name_ + "-" + std::to_string(i);
      pthread_setname_np(pthread_self(), thread_name.substr(0, 15).c_str());
      if (cpu) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(*cpu, &set);
        pthread_setaffinity_np(pthread_self(), sizeof set, &set);
      }
      // A handler that throws loses its own work only: the loop goes on with the rest (Asio's
      // run() may be called again after an exception), until stop().
      for (;;) {
        try {
          loop.io.run();
          return;
        } catch (const std::exception& e) {
          logger(name_)->error("event loop {}: a handler threw: {}", thread_name, e.what());
        }
      }
    });
  }
}

void EventLoops::stop() {
  for (auto& loop : loops_) {
    loop->busy.reset();
    loop->io.stop();
  }
  for (auto& loop : loops_) {
    if (loop->thread.joinable()) loop->thread.join();
  }
}

boost::asio::io_context::executor_type EventLoops::next() {
  std::size_t i = turn_.fetch_add(1, std::memory_order_relaxed) % loops_.size();
  return loops_[i]->io.get_executor();
}

}  // namespace pullthrough::core
