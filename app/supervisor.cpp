#include "app/supervisor.hpp"

#include <utility>

#include <csignal>
#include <thread>

#include <boost/asio/post.hpp>

#include "core/logging.hpp"

namespace pullthrough::app {
namespace {

std::string_view signal_name(int signal_number) {
  switch (signal_number) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    default:
      return "signal";
  }
}

// Tracks the worker threads so that the supervisor can wait for them with a deadline.
class WorkerPool {
 public:
  void start(boost::asio::io_context& io, unsigned count) {
    running_ = count;
    for (unsigned i = 0; i < count; ++i) {
      threads_.emplace_back([this, &io] {
        io.run();
        std::lock_guard lock(mutex_);
        if (--running_ == 0) done_.notify_all();
      });
    }
  }

  // True when every thread returned from run() in time.
  bool wait_for(std::chrono::milliseconds deadline) {
    std::unique_lock lock(mutex_);
    return done_.wait_for(lock, deadline, [this] { return running_ == 0; });
  }

  void join() {
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  unsigned running_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace

Supervisor::Supervisor(AbandonableIoContext& io, std::vector<core::Service*> services,
                       core::Duration handover, std::function<void()> begin_leaving,
                       std::chrono::milliseconds drain_deadline)
    : io_(io),
      services_(std::move(services)),
      handover_(begin_leaving ? handover : core::Duration::zero()),
      begin_leaving_(std::move(begin_leaving)),
      drain_deadline_(drain_deadline),
      signals_(io, SIGINT, SIGTERM),
      handover_timer_(io),
      undrained_(services_.size()) {}

void Supervisor::run(unsigned thread_count) {
  auto log = core::logger("app");
  {
    std::lock_guard lock(mutex_);
    wait_for_signal();
  }
  WorkerPool pool;
  pool.start(io_, thread_count);
  log->info("ready: {} worker threads", thread_count);

  {
    std::unique_lock lock(mutex_);
    draining_.wait(lock, [this] { return phase_ == Phase::draining; });
  }
  if (!pool.wait_for(drain_deadline_)) {
    log->warn("drain deadline passed; abandoning work still in flight");
    io_.stop();
  }
  pool.join();
  io_.destroy_abandoned_work();
}

void Supervisor::request_stop(std::string_view name) {
  boost::asio::post(io_, [this, name = std::string(name)] { on_stop_request(name); });
}

// With mutex_ held. The pending wait is what keeps the io_context running until every service
// has drained; service_drained() cancels it then.
void Supervisor::wait_for_signal() {
  signals_.async_wait([this](const boost::system::error_code& ec, int signal_number) {
    if (ec) return;  // cancelled: drained
    {
      // Re-armed before any service can drain and cancel it; a drain has begun when it is not.
      std::lock_guard lock(mutex_);
      if (phase_ != Phase::draining) wait_for_signal();
    }
    on_stop_request(signal_name(signal_number));
  });
}

// On an io_context thread.
void Supervisor::on_stop_request(std::string_view name) {
  auto log = core::logger("app");
  std::lock_guard lock(mutex_);
  if (phase_ == Phase::draining) {
    log->warn("{} received while draining: stopping without waiting", name);
    io_.stop();
    return;
  }
  if (phase_ == Phase::handing_over) {
    log->warn("second {} received: cutting the handover short", name);
    drain();
  } else if (handover_ > core::Duration::zero()) {
    log->info(
        "{} received: handing over for {}: the cache serves on while health checks "
        "hear it is leaving (a second signal skips this)",
        name, core::format_duration(handover_));
    phase_ = Phase::handing_over;
    begin_leaving_();
    handover_timer_.expires_after(handover_);
    handover_timer_.async_wait([this](const boost::system::error_code& waited) {
      std::lock_guard timer_lock(mutex_);
      if (waited || phase_ != Phase::handing_over) return;
      core::logger("app")->info("handover done");
      drain();
    });
  } else {
    log->info("{} received", name);
    drain();
  }
}

void Supervisor::drain() {
  core::logger("app")->info("closing listeners and draining (deadline {})",
                            core::format_duration(drain_deadline_));
  phase_ = Phase::draining;
  handover_timer_.cancel();
  draining_.notify_all();
  if (services_.empty()) signals_.cancel();  // nothing will drain to cancel it
  for (auto* service : services_) service->stop([this] { service_drained(); });
}

// On any thread. Once every service has drained, cancelling the signal wait leaves the
// io_context without work, and the worker threads return.
void Supervisor::service_drained() {
  boost::asio::post(io_, [this] {
    std::lock_guard lock(mutex_);
    if (--undrained_ == 0) signals_.cancel();
  });
}

}  // namespace pullthrough::app
