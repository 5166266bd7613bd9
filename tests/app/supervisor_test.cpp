#include "app/supervisor.hpp"

#include <utility>

#include <atomic>
#include <csignal>
#include <future>
#include <memory>
#include <sstream>

#include <boost/asio/post.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "core/logging.hpp"

namespace pullthrough::app {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

// Something that happens once, on any thread, and that a test waits for.
class Event {
 public:
  void set() {
    if (!set_.exchange(true)) {
      at_ = Clock::now();
      promise_.set_value();
    }
  }
  bool wait(std::chrono::milliseconds limit = 5s) const {
    return future_.wait_for(limit) == std::future_status::ready;
  }
  bool is_set() const { return set_; }
  // Only after wait() returned true.
  Clock::time_point at() const { return at_; }

 private:
  std::atomic<bool> set_{false};
  Clock::time_point at_;
  std::promise<void> promise_;
  std::shared_future<void> future_ = promise_.get_future().share();
};

// A service that drains as soon as it is stopped, or, with `drains` false, never: its stop()
// leaves a wait of an hour on the io_context, whose handler refers to the service.
class FakeService final : public core::Service {
 public:
  FakeService(boost::asio::io_context& io, bool drains) : drains_(drains), timer_(io) {}

  std::string_view name() const override { return "fake"; }
  void start() override {}
  void stop(std::function<void()> drained) override {
    ++stops;
    stopped.set();
    if (drains_) {
      boost::asio::post(timer_.get_executor(), std::move(drained));
      return;
    }
    timer_.expires_after(1h);
    timer_.async_wait([this, witness = Witness{this}, drained = std::move(drained)](
                          const boost::system::error_code&) { held_work_ran = true; });
  }

  std::atomic<int> stops{0};
  Event stopped;
  // Set when the pending handler is destroyed: it must be, and while this service is alive.
  std::atomic<bool> held_work_destroyed{false};
  std::atomic<bool> held_work_ran{false};

 private:
  // Writes into the service when destroyed, so that ASan sees a handler outliving it.
  struct Witness {
    explicit Witness(FakeService* service) : service_(service) {}
    Witness(Witness&& other) noexcept : service_(std::exchange(other.service_, nullptr)) {}
    Witness(const Witness&) = delete;
    Witness& operator=(const Witness&) = delete;
    Witness& operator=(Witness&&) = delete;
    ~Witness() {
      if (service_ != nullptr) service_->held_work_destroyed = true;
    }
    FakeService* service_;
  };

  bool drains_;
  boost::asio::steady_timer timer_;
};

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    core::configure_logging(spdlog::level::info, core::LogFormat::text, sink_);
  }
  // The fixture's stream dies with it: put every logger back on stderr.
  void TearDown() override {
    core::configure_logging(spdlog::level::info, core::LogFormat::text,
                            std::make_shared<spdlog::sinks::stderr_sink_mt>());
  }

  FakeService& add_service(bool drains = true) {
    services_.push_back(std::make_unique<FakeService>(io_, drains));
    return *services_.back();
  }

  std::unique_ptr<Supervisor> make(core::Duration handover, std::chrono::milliseconds deadline) {
    std::vector<core::Service*> services;
    for (auto& s : services_) services.push_back(s.get());
    std::function<void()> begin_leaving;
    if (handover > core::Duration::zero()) begin_leaving = [this] { leaving_.set(); };
    return std::make_unique<Supervisor>(io_, std::move(services), handover,
                                        std::move(begin_leaving), deadline);
  }

  // Runs the supervisor on a thread of its own; `returned_` is set when run() returns.
  void run(Supervisor& supervisor) {
    runner_ = std::async(std::launch::async, [this, &supervisor] {
      supervisor.run(2);
      returned_.set();
    });
  }

  bool every_service_stopped_once() const {
    for (const auto& s : services_) {
      if (s->stops != 1) return false;
    }
    return true;
  }

  std::string log() const { return out_.str(); }

  // Destroyed after the services, as serve() destroys its io_context after them.
  AbandonableIoContext io_{2};
  std::vector<std::unique_ptr<FakeService>> services_;
  Event leaving_;
  Event returned_;
  std::future<void> runner_;
  std::ostringstream out_;
  spdlog::sink_ptr sink_ = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
};

TEST_F(SupervisorTest, OneStopRequestDrainsEveryServiceAndRunReturns) {
  add_service();
  add_service();
  add_service();
  auto supervisor = make(0s, 10s);
  run(*supervisor);
  supervisor->request_stop("test");
  ASSERT_TRUE(returned_.wait());
  EXPECT_TRUE(every_service_stopped_once());
  EXPECT_THAT(log(), HasSubstr("[app] ready: 2 worker threads"));
  EXPECT_THAT(log(), HasSubstr("[app] test received\n"));
  EXPECT_THAT(log(), HasSubstr("closing listeners and draining (deadline 10s)"));
  EXPECT_THAT(log(), Not(HasSubstr("deadline passed")));
}

TEST_F(SupervisorTest, ARequestBeforeRunIsHandledOnceItRuns) {
  add_service();
  auto supervisor = make(0s, 10s);
  supervisor->request_stop("early");
  run(*supervisor);
  ASSERT_TRUE(returned_.wait());
  EXPECT_TRUE(every_service_stopped_once());
}

TEST_F(SupervisorTest, ASigtermIsAStopRequest) {
  add_service();
  auto supervisor = make(0s, 10s);  // from here on, SIGTERM is the supervisor's
  run(*supervisor);
  ASSERT_EQ(std::raise(SIGTERM), 0);
  ASSERT_TRUE(returned_.wait());
  EXPECT_TRUE(every_service_stopped_once());
  EXPECT_THAT(log(), HasSubstr("[app] SIGTERM received\n"));
}

TEST_F(SupervisorTest, AHandoverComesFirstAndServicesStopOnlyAfterIt) {
  auto& service = add_service();
  add_service();
  auto supervisor = make(300ms, 10s);
  run(*supervisor);
  supervisor->request_stop("test");
  ASSERT_TRUE(leaving_.wait());
  EXPECT_EQ(service.stops, 0);  // 300 ms are long after the request reached begin_leaving
  ASSERT_TRUE(returned_.wait());
  EXPECT_TRUE(every_service_stopped_once());
  EXPECT_GE(service.stopped.at() - leaving_.at(), 300ms);
  EXPECT_THAT(log(), HasSubstr("test received: handing over for 300ms: the cache serves on while "
                               "health checks hear it is leaving (a second signal skips this)"));
  EXPECT_THAT(log(), HasSubstr("[app] handover done"));
}

TEST_F(SupervisorTest, WithoutACacheThereIsNoHandover) {
  add_service();
  std::vector<core::Service*> services{services_.front().get()};
  Supervisor supervisor(io_, std::move(services), 30s, nullptr, 10s);
  run(supervisor);
  supervisor.request_stop("test");
  ASSERT_TRUE(returned_.wait());
  EXPECT_TRUE(every_service_stopped_once());
  EXPECT_THAT(log(), Not(HasSubstr("handing over")));
}

TEST_F(SupervisorTest, ASecondRequestCutsTheHandoverShort) {
  add_service();
  auto supervisor = make(30s, 10s);
  run(*supervisor);
  supervisor->request_stop("test");
  ASSERT_TRUE(leaving_.wait());
  supervisor->request_stop("test");
  // Far less than the 30 s the handover would have lasted.
  ASSERT_TRUE(returned_.wait(10s));
  EXPECT_TRUE(every_service_stopped_once());
  EXPECT_THAT(log(), HasSubstr("[app] second test received: cutting the handover short"));
  EXPECT_THAT(log(), Not(HasSubstr("handover done")));
}

TEST_F(SupervisorTest, AThirdRequestEndsTheDrainWithoutWaiting) {
  add_service();
  auto& stuck = add_service(false);
  auto supervisor = make(30s, 30s);
  run(*supervisor);
  supervisor->request_stop("test");
  ASSERT_TRUE(leaving_.wait());
  supervisor->request_stop("test");
  ASSERT_TRUE(stuck.stopped.wait());
  supervisor->request_stop("test");
  // Far less than the 30 s drain deadline.
  ASSERT_TRUE(returned_.wait(10s));
  EXPECT_THAT(log(), HasSubstr("[app] test received while draining: stopping without waiting"));
  EXPECT_THAT(log(), Not(HasSubstr("deadline passed")));
  EXPECT_TRUE(stuck.held_work_destroyed);
  EXPECT_FALSE(stuck.held_work_ran);
}

TEST_F(SupervisorTest, AServiceThatNeverDrainsIsAbandonedAtTheDeadline) {
  auto& drains = add_service();
  auto& stuck = add_service(false);
  auto supervisor = make(0s, 200ms);
  run(*supervisor);
  supervisor->request_stop("test");
  ASSERT_TRUE(returned_.wait());
  EXPECT_EQ(drains.stops, 1);
  EXPECT_EQ(stuck.stops, 1);
  EXPECT_GE(returned_.at() - stuck.stopped.at(), 200ms);
  EXPECT_THAT(log(), HasSubstr("closing listeners and draining (deadline 200ms)"));
  EXPECT_THAT(log(), HasSubstr("[app] drain deadline passed; abandoning work still in flight"));
  // The pending handler was destroyed by run(), not by the io_context's destructor after the
  // service was gone, and never ran.
  EXPECT_TRUE(stuck.held_work_destroyed);
  EXPECT_FALSE(stuck.held_work_ran);
}

}  // namespace
}  // namespace pullthrough::app
