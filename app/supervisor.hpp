// The appliance's life once its services have started: a pool of threads runs them, and a stop
// (SIGINT, SIGTERM or request_stop) walks them through the handover, the drain and its deadline.
// `pullthrough serve` builds the services and hands them here.
#pragma once

#include "core/asio.hpp"

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/service.hpp"
#include "core/units.hpp"

namespace pullthrough::app {

// The services, and the parts they use, are destroyed before the io_context. Work abandoned by a
// third stop request or the drain deadline (a session waiting on a slow client, say) is still
// queued then, and its coroutine frames hold references into the services: gate holders,
// streams, fetch handles. destroy_abandoned_work() destroys those frames first, without running
// them, while everything they refer to is alive; what the io_context's destructor would do later,
// when it no longer is.
class AbandonableIoContext : public boost::asio::io_context {
 public:
  using boost::asio::io_context::io_context;
  // Only after every thread has left run().
  void destroy_abandoned_work() { shutdown(); }
};

// Stopping goes through up to two phases. With a handover, the first stop request starts it: the
// cache keeps serving while its health answers say it is leaving (begin_leaving), so the DNS side
// (this process's or another appliance's) stops handing it out and clients' answers expire.
// Then, or at once without a handover, listeners close and work drains. Each further request
// cuts the current phase short.
class Supervisor {
 public:
  // `io`, the services and `begin_leaving` must outlive the supervisor; the services must have
  // started. A handover happens only when `handover` is positive and `begin_leaving` is set
  // (that is, when there is a cache). `drain_deadline`: how long the drain may take before the
  // work still in flight is abandoned.
  Supervisor(AbandonableIoContext& io, std::vector<core::Service*> services,
             core::Duration handover, std::function<void()> begin_leaving,
             std::chrono::milliseconds drain_deadline);
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Runs the io_context on `thread_count` threads and blocks until every service has drained or
  // the rest was abandoned (third request, drain deadline); then destroys the abandoned work.
  // Called once.
  void run(unsigned thread_count);

  // What SIGINT and SIGTERM do; `name` says which in the log. From any thread, also before run():
  // the request is handled on an io_context thread, where services may be stopped.
  void request_stop(std::string_view name);

 private:
  enum class Phase { running, handing_over, draining };

  void wait_for_signal();
  void on_stop_request(std::string_view name);
  void drain();  // with mutex_ held
  void service_drained();

  AbandonableIoContext& io_;
  std::vector<core::Service*> services_;
  core::Duration handover_;
  std::function<void()> begin_leaving_;
  std::chrono::milliseconds drain_deadline_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer handover_timer_;
  std::mutex mutex_;
  std::condition_variable draining_;
  Phase phase_ = Phase::running;
  std::size_t undrained_;  // with mutex_ held
};

}  // namespace pullthrough::app
