#include "dns/forwarder.hpp"

#include "core/asio.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>

#include "tests/core/eventually.hpp"

namespace pullthrough::dns {

// Found by GoogleTest through ADL: "timeout" rather than "4-byte object <01-00 00-00>".
void PrintTo(ForwardResult::Status status, std::ostream* out) {
  switch (status) {
    case ForwardResult::Status::answer:
      *out << "answer";
      return;
    case ForwardResult::Status::timeout:
      *out << "timeout";
      return;
    case ForwardResult::Status::error:
      *out << "error";
      return;
  }
  *out << "Status(" << static_cast<int>(status) << ")";
}

namespace {

using asio::ip::tcp;
using asio::ip::udp;
using Bytes = std::vector<std::uint8_t>;
using Status = ForwardResult::Status;
using namespace std::chrono_literals;

constexpr std::uint8_t kServfail = 2;
constexpr std::uint8_t kRefused = 5;

// A query for `name`, type A, class IN, recursion desired.
Bytes make_query(const std::string& name, std::uint16_t id = 0x1234) {
  Bytes query{static_cast<std::uint8_t>(id >> 8),
              static_cast<std::uint8_t>(id & 0xff),
              0x01,
              0x00,
              0,
              1,
              0,
              0,
              0,
              0,
              0,
              0};
  std::size_t start = 0;
  while (start <= name.size()) {
    auto dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    query.push_back(static_cast<std::uint8_t>(dot - start));
    query.insert(query.end(), name.begin() + static_cast<std::ptrdiff_t>(start),
                 name.begin() + static_cast<std::ptrdiff_t>(dot));
    start = dot + 1;
  }
  query.insert(query.end(), {0, 0, 1, 0, 1});
  return query;
}

std::uint16_t id_of(const Bytes& message) {
  return static_cast<std::uint16_t>(message.at(0) << 8 | message.at(1));
}
std::uint8_t rcode_of(const Bytes& message) { return message.at(3) & 0x0f; }
bool is_truncated(const Bytes& message) { return (message.at(2) & 0x02) != 0; }
int answer_count(const Bytes& message) { return message.at(6) << 8 | message.at(7); }

struct Reply {
  std::uint8_t rcode = 0;
  bool truncated = false;
  int records = 1;
};

// The response an upstream gives to `query`: its ID, flags and question, then `records` A records
// 192.0.2.1, 192.0.2.2, ... Empty when the query's question does not parse.
Bytes make_response(const Bytes& query, Reply reply) {
  std::size_t end = 12;
  while (end < query.size() && query[end] != 0) end += query[end] + 1U;
  end += 1 + 4;
  if (query.size() < end) return {};
  Bytes response(query.begin(), query.begin() + 12);
  // QR, the query's opcode and RD, TC when asked; RA and the rcode.
  response[2] = static_cast<std::uint8_t>(0x80 | (query[2] & 0x79) | (reply.truncated ? 0x02 : 0));
  response[3] = static_cast<std::uint8_t>(0x80 | reply.rcode);
  response[4] = 0;
  response[5] = 1;
  response[6] = static_cast<std::uint8_t>(reply.records >> 8);
  response[7] = static_cast<std::uint8_t>(reply.records & 0xff);
  std::fill(response.begin() + 8, response.end(), 0);
  response.insert(response.end(), query.begin() + 12,
                  query.begin() + static_cast<std::ptrdiff_t>(end));
  for (int i = 0; i < reply.records; ++i) {
    response.insert(response.end(), {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2,
                                     static_cast<std::uint8_t>(i + 1)});
  }
  return response;
}

enum class Behaviour {
  answer,    // one A record
  servfail,  // rcode 2, no records
  refused,   // rcode 5, no records
  silent,    // never answers
  truncate,  // TC=1 over UDP; 40 A records over TCP
};

// A DNS server on a loopback address: UDP and TCP on the same port, answering as told, on a
// thread of its own.
class FakeUpstream {
 public:
  static std::unique_ptr<FakeUpstream> start(const std::string& address, Behaviour behaviour) {
    std::unique_ptr<FakeUpstream> upstream(new FakeUpstream(behaviour));
    if (!upstream->bind(asio::ip::make_address(address))) return nullptr;
    asio::co_spawn(upstream->io_, upstream->serve_udp(), asio::detached);
    asio::co_spawn(upstream->io_, upstream->serve_tcp(), asio::detached);
    upstream->thread_ = std::thread([u = upstream.get()] { u->io_.run(); });
    return upstream;
  }

  FakeUpstream(const FakeUpstream&) = delete;
  FakeUpstream& operator=(const FakeUpstream&) = delete;

  ~FakeUpstream() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
    error_code ignored;
    udp_.close(ignored);
    acceptor_.close(ignored);
  }

  core::Endpoint endpoint() const { return core::Endpoint{address_, port_}; }
  int udp_queries() const { return udp_queries_.load(); }
  int tcp_queries() const { return tcp_queries_.load(); }
  // The ID of the last query received, which c-ares chose.
  std::uint16_t last_id() const { return last_id_.load(); }
  // The last query received, as c-ares sent it.
  Bytes last_query() const {
    std::lock_guard lock(mutex_);
    return last_query_;
  }

  bool wait_for_udp_queries(int count, std::chrono::milliseconds limit) const {
    return core::testing::eventually([&] { return udp_queries() >= count; }, limit);
  }

 private:
  explicit FakeUpstream(Behaviour behaviour) : behaviour_(behaviour), udp_(io_), acceptor_(io_) {}

  // UDP on an ephemeral port, then TCP on the same number; another try when TCP's is taken.
  bool bind(const asio::ip::address& address) {
    for (int attempt = 0; attempt < 20; ++attempt) {
      error_code ec;
      udp_.open(address.is_v4() ? udp::v4() : udp::v6(), ec);
      if (!ec) udp_.bind(udp::endpoint(address, 0), ec);
      if (ec) return false;
      auto port = udp_.local_endpoint().port();
      acceptor_.open(address.is_v4() ? tcp::v4() : tcp::v6(), ec);
      if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec) acceptor_.bind(tcp::endpoint(address, port), ec);
      if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
      if (!ec) {
        address_ = address;
        port_ = port;
        return true;
      }
      error_code ignored;
      udp_.close(ignored);
      acceptor_.close(ignored);
    }
    return false;
  }

  void record(const Bytes& query) {
    last_id_ = id_of(query);
    std::lock_guard lock(mutex_);
    last_query_ = query;
  }

  asio::awaitable<void> serve_udp() {
    Bytes buffer(65536);
    for (;;) {
      udp::endpoint from;
      error_code ec;
      auto n = co_await udp_.async_receive_from(asio::buffer(buffer), from,
                                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !udp_.is_open()) co_return;
      if (ec || n < 12) continue;
      Bytes query(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(n));
      record(query);
      ++udp_queries_;
      Bytes response;
      switch (behaviour_) {
        case Behaviour::answer:
          response = make_response(query, Reply{});
          break;
        case Behaviour::servfail:
          response = make_response(query, Reply{kServfail, false, 0});
          break;
        case Behaviour::refused:
          response = make_response(query, Reply{kRefused, false, 0});
          break;
        case Behaviour::silent:
          continue;
        case Behaviour::truncate:
          response = make_response(query, Reply{0, true, 0});
          break;
      }
      co_await udp_.async_send_to(asio::buffer(response), from,
                                  asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  asio::awaitable<void> serve_tcp() {
    for (;;) {
      tcp::socket socket(io_);
      error_code ec;
      co_await acceptor_.async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      if (ec) continue;
      asio::co_spawn(io_, serve_connection(std::move(socket)), asio::detached);
    }
  }

  // Length-prefixed messages, as many as the client sends on the connection.
  asio::awaitable<void> serve_connection(tcp::socket socket) {
    for (;;) {
      std::uint8_t length[2];
      error_code ec;
      co_await asio::async_read(socket, asio::buffer(length),
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      Bytes query(static_cast<std::size_t>(length[0] << 8 | length[1]));
      co_await asio::async_read(socket, asio::buffer(query),
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      record(query);
      ++tcp_queries_;
      if (behaviour_ == Behaviour::silent) continue;
      Reply reply;
      if (behaviour_ == Behaviour::truncate) reply.records = 40;
      if (behaviour_ == Behaviour::servfail) reply = Reply{kServfail, false, 0};
      if (behaviour_ == Behaviour::refused) reply = Reply{kRefused, false, 0};
      Bytes response = make_response(query, reply);
      Bytes framed{static_cast<std::uint8_t>(response.size() >> 8),
                   static_cast<std::uint8_t>(response.size() & 0xff)};
      framed.insert(framed.end(), response.begin(), response.end());
      co_await asio::async_write(socket, asio::buffer(framed),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
    }
  }

  Behaviour behaviour_;
  asio::io_context io_;
  udp::socket udp_;
  tcp::acceptor acceptor_;
  core::IpAddress address_;
  std::uint16_t port_ = 0;
  std::atomic<int> udp_queries_{0};
  std::atomic<int> tcp_queries_{0};
  std::atomic<std::uint16_t> last_id_{0};
  mutable std::mutex mutex_;
  Bytes last_query_;
  std::thread thread_;
};

// One forward()'s outcome, and how often `done` ran for it.
struct Outcome {
  std::promise<ForwardResult> promise;
  std::future<ForwardResult> future = promise.get_future();
  std::atomic<int> calls{0};
  std::atomic<bool> on_strand{true};
};

// Runs the forwarder's io_context on a thread of its own for the length of a test.
class ForwarderTest : public ::testing::Test {
 protected:
  ForwarderTest() : work_(asio::make_work_guard(io_)) {
    thread_ = std::thread([this] {
      io_.run();
      stopped_.set_value();
    });
  }

  ~ForwarderTest() override {
    // Once the forwarder is gone, nothing of it may keep the io_context busy.
    forwarder_.reset();
    work_.reset();
    auto drained = stopped_future_.wait_for(5s) == std::future_status::ready;
    EXPECT_TRUE(drained) << "the forwarder left work behind";
    if (!drained) io_.stop();
    thread_.join();
  }

  void start(const std::vector<core::Endpoint>& upstreams,
             std::chrono::milliseconds timeout = 2000ms) {
    forwarder_ = std::make_unique<Forwarder>(io_, upstreams, timeout);
  }

  std::shared_ptr<Outcome> forward_async(const Bytes& query) {
    auto outcome = std::make_shared<Outcome>();
    forwarder_->forward(query, [this, outcome](ForwardResult result) {
      if (!strand_running_in_this_thread()) outcome->on_strand = false;
      if (++outcome->calls == 1) outcome->promise.set_value(std::move(result));
    });
    return outcome;
  }

  // Fails the test instead of hanging when `done` never comes.
  ForwardResult forward(const Bytes& query, std::chrono::milliseconds limit = 5s) {
    auto outcome = forward_async(query);
    if (outcome->future.wait_for(limit) != std::future_status::ready) {
      ADD_FAILURE() << "done was not called within " << limit.count() << " ms";
      return ForwardResult{};
    }
    EXPECT_TRUE(outcome->on_strand);
    return outcome->future.get();
  }

  // `done` runs on the forwarder's strand, hence on the io_context's only thread.
  bool strand_running_in_this_thread() const {
    return std::this_thread::get_id() == thread_.get_id();
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::promise<void> stopped_;
  std::future<void> stopped_future_ = stopped_.get_future();
  std::thread thread_;
  std::unique_ptr<Forwarder> forwarder_;
};

TEST_F(ForwarderTest, RelaysAnswerUnderTheIdCaresChose) {
  auto upstream = FakeUpstream::start("127.0.0.1", Behaviour::answer);
  ASSERT_TRUE(upstream);
  start({upstream->endpoint()});
  auto query = make_query("www.example.test");
  auto result = forward(query);
  ASSERT_EQ(result.status, Status::answer) << result.error;
  // The upstream saw our query under an ID of c-ares's, and the answer carries that ID back.
  auto sent = upstream->last_query();
  ASSERT_EQ(sent.size(), query.size());
  EXPECT_TRUE(std::equal(sent.begin() + 2, sent.end(), query.begin() + 2));
  EXPECT_EQ(id_of(result.answer), upstream->last_id());
  auto expected = make_response(query, Reply{});
  expected[0] = result.answer.at(0);
  expected[1] = result.answer.at(1);
  EXPECT_EQ(result.answer, expected);
  EXPECT_EQ(forwarder_->counters().queries_sent.value(), 1U);
  EXPECT_EQ(forwarder_->counters().answers.value(), 1U);
  EXPECT_EQ(forwarder_->counters().timeouts.value(), 0U);
  EXPECT_EQ(forwarder_->counters().errors.value(), 0U);
}

// Without ARES_FLAG_NOCHECKRESP c-ares drops a SERVFAIL, tries the next upstream and, when none
// is left, reports an error instead of the upstream's answer.
TEST_F(ForwarderTest, NoCheckRespRegressionServfailIsRelayed) {
  auto upstream = FakeUpstream::start("127.0.0.1", Behaviour::servfail);
  ASSERT_TRUE(upstream);
  start({upstream->endpoint()});
  auto result = forward(make_query("broken.example.test"));
  ASSERT_EQ(result.status, Status::answer) << result.error;
  EXPECT_EQ(rcode_of(result.answer), kServfail);
  EXPECT_EQ(upstream->udp_queries(), 1);
  EXPECT_EQ(forwarder_->counters().answers.value(), 1U);
}

TEST_F(ForwarderTest, NoCheckRespRegressionRefusedIsRelayed) {
  auto upstream = FakeUpstream::start("127.0.0.1", Behaviour::refused);
  ASSERT_TRUE(upstream);
  start({upstream->endpoint()});
  auto result = forward(make_query("refused.example.test"));
  ASSERT_EQ(result.status, Status::answer) << result.error;
  EXPECT_EQ(rcode_of(result.answer), kRefused);
  EXPECT_EQ(upstream->udp_queries(), 1);
}

TEST_F(ForwarderTest, SilentUpstreamTimesOut) {
  auto upstream = FakeUpstream::start("127.0.0.1", Behaviour::silent);
  ASSERT_TRUE(upstream);
  start({upstream->endpoint()}, 200ms);
  auto began = std::chrono::steady_clock::now();
  auto result = forward(make_query("slow.example.test"));
  auto took = std::chrono::steady_clock::now() - began;
  EXPECT_EQ(result.status, Status::timeout) << result.error;
  EXPECT_GE(took, 190ms);
  EXPECT_LT(took, 2s);
  EXPECT_EQ(upstream->udp_queries(), 1);  // ARES_OPT_TRIES = 1
  EXPECT_EQ(forwarder_->counters().timeouts.value(), 1U);
}

TEST_F(ForwarderTest, SecondUpstreamAnswersWhenFirstIsSilent) {
  auto silent = FakeUpstream::start("127.0.0.1", Behaviour::silent);
  auto answering = FakeUpstream::start("127.0.0.1", Behaviour::answer);
  ASSERT_TRUE(silent && answering);
  start({silent->endpoint(), answering->endpoint()}, 200ms);
  auto began = std::chrono::steady_clock::now();
  auto result = forward(make_query("second.example.test"));
  auto took = std::chrono::steady_clock::now() - began;
  ASSERT_EQ(result.status, Status::answer) << result.error;
  EXPECT_EQ(id_of(result.answer), answering->last_id());
  EXPECT_EQ(answer_count(result.answer), 1);
  EXPECT_EQ(silent->udp_queries(), 1);
  EXPECT_EQ(answering->udp_queries(), 1);
  EXPECT_GE(took, 190ms);
  EXPECT_LT(took, 2s);
}

TEST_F(ForwarderTest, TruncatedUdpAnswerIsRetriedOverTcp) {
  auto upstream = FakeUpstream::start("127.0.0.1", Behaviour::truncate);
  ASSERT_TRUE(upstream);
  start({upstream->endpoint()});
  auto query = make_query("big.example.test");
  auto result = forward(query);
  ASSERT_EQ(result.status, Status::answer) << result.error;
  EXPECT_FALSE(is_truncated(result.answer));
  EXPECT_EQ(answer_count(result.answer), 40);
  EXPECT_GT(result.answer.size(), 512U);
  auto expected = make_response(query, Reply{0, false, 40});
  expected[0] = result.answer.at(0);
  expected[1] = result.answer.at(1);
  EXPECT_EQ(result.answer, expected);
  EXPECT_EQ(upstream->udp_queries(), 1);
  EXPECT_EQ(upstream->tcp_queries(), 1);
}

TEST_F(ForwarderTest, ManyConcurrentQueriesEachCompleteOnce) {
  auto upstream = FakeUpstream::start("127.0.0.1", Behaviour::answer);
  ASSERT_TRUE(upstream);
  start({upstream->endpoint()});
  constexpr int kQueries = 200;
  std::vector<std::shared_ptr<Outcome>> outcomes;
  // From several threads at once: forward() is safe from any thread.
  std::vector<std::thread> senders;
  std::mutex outcomes_mutex;
  for (int t = 0; t < 4; ++t) {
    senders.emplace_back([&, t] {
      for (int i = t; i < kQueries; i += 4) {
        auto outcome = forward_async(make_query("q" + std::to_string(i) + ".example.test"));
        std::lock_guard lock(outcomes_mutex);
        outcomes.push_back(std::move(outcome));
      }
    });
  }
  for (auto& sender : senders) sender.join();
  ASSERT_EQ(outcomes.size(), static_cast<std::size_t>(kQueries));
  int answers = 0;
  for (auto& outcome : outcomes) {
    ASSERT_EQ(outcome->future.wait_for(10s), std::future_status::ready);
    auto result = outcome->future.get();
    if (result.status == Status::answer) ++answers;
  }
  EXPECT_EQ(answers, kQueries);
  // Any second call would have come by now: the forwarder is idle.
  forwarder_.reset();
  for (auto& outcome : outcomes) {
    EXPECT_EQ(outcome->calls.load(), 1);
    EXPECT_TRUE(outcome->on_strand);
  }
}

// Answers pile up on the one TCP connection faster than they are read; c-ares reads a piece per
// call, and the reactor reports readiness once, so the forwarder has to drain the socket.
TEST_F(ForwarderTest, ManyTruncatedAnswersShareOneTcpConnection) {
  auto upstream = FakeUpstream::start("127.0.0.1", Behaviour::truncate);
  ASSERT_TRUE(upstream);
  start({upstream->endpoint()});
  constexpr int kQueries = 50;
  std::vector<std::shared_ptr<Outcome>> outcomes;
  for (int i = 0; i < kQueries; ++i) {
    outcomes.push_back(forward_async(make_query("big" + std::to_string(i) + ".example.test")));
  }
  for (auto& outcome : outcomes) {
    ASSERT_EQ(outcome->future.wait_for(10s), std::future_status::ready);
    auto result = outcome->future.get();
    ASSERT_EQ(result.status, Status::answer) << result.error;
    EXPECT_EQ(answer_count(result.answer), 40);
  }
  EXPECT_EQ(upstream->tcp_queries(), kQueries);
}

TEST_F(ForwarderTest, ShutdownFailsQueriesInFlightAndRefusesNewOnes) {
  auto upstream = FakeUpstream::start("127.0.0.1", Behaviour::silent);
  ASSERT_TRUE(upstream);
  start({upstream->endpoint()}, 10000ms);
  std::vector<std::shared_ptr<Outcome>> outcomes;
  for (int i = 0; i < 10; ++i) {
    outcomes.push_back(forward_async(make_query("pending" + std::to_string(i) + ".example.test")));
  }
  ASSERT_TRUE(upstream->wait_for_udp_queries(10, 5s));
  forwarder_->shutdown();
  for (auto& outcome : outcomes) {
    ASSERT_EQ(outcome->future.wait_for(2s), std::future_status::ready);
    auto result = outcome->future.get();
    EXPECT_EQ(result.status, Status::error);
    EXPECT_EQ(result.error, "shut down");
  }
  auto late = forward(make_query("late.example.test"));
  EXPECT_EQ(late.status, Status::error);
  EXPECT_EQ(upstream->udp_queries(), 10);
  EXPECT_EQ(forwarder_->counters().errors.value(), 11U);
  forwarder_.reset();
  for (auto& outcome : outcomes) EXPECT_EQ(outcome->calls.load(), 1);
}

TEST_F(ForwarderTest, DestroyedWithQueriesInFlightFailsThemOnce) {
  auto upstream = FakeUpstream::start("127.0.0.1", Behaviour::silent);
  ASSERT_TRUE(upstream);
  start({upstream->endpoint()}, 10000ms);
  auto outcome = forward_async(make_query("pending.example.test"));
  ASSERT_TRUE(upstream->wait_for_udp_queries(1, 5s));
  forwarder_.reset();
  ASSERT_EQ(outcome->future.wait_for(2s), std::future_status::ready);
  EXPECT_EQ(outcome->future.get().status, Status::error);
  EXPECT_EQ(outcome->calls.load(), 1);
}

TEST_F(ForwarderTest, Ipv6Upstream) {
  auto upstream = FakeUpstream::start("::1", Behaviour::answer);
  if (!upstream) GTEST_SKIP() << "cannot bind [::1]";
  start({upstream->endpoint()});
  auto result = forward(make_query("v6.example.test"));
  ASSERT_EQ(result.status, Status::answer) << result.error;
  EXPECT_EQ(id_of(result.answer), upstream->last_id());
  EXPECT_EQ(answer_count(result.answer), 1);
}

TEST_F(ForwarderTest, ClosedPortIsAnErrorBeforeTheTimeout) {
  // A port that was just free: the kernel answers with ICMP port unreachable.
  std::uint16_t port = 0;
  {
    asio::io_context scratch;
    udp::socket socket(scratch, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = socket.local_endpoint().port();
  }
  start({core::Endpoint{asio::ip::make_address("127.0.0.1"), port}}, 5000ms);
  auto began = std::chrono::steady_clock::now();
  auto result = forward(make_query("nobody.example.test"));
  EXPECT_EQ(result.status, Status::error);
  EXPECT_FALSE(result.error.empty());
  EXPECT_LT(std::chrono::steady_clock::now() - began, 4s);
}

TEST_F(ForwarderTest, QueryShorterThanAHeaderIsAnError) {
  auto upstream = FakeUpstream::start("127.0.0.1", Behaviour::answer);
  ASSERT_TRUE(upstream);
  start({upstream->endpoint()});
  auto result = forward(Bytes{0x12, 0x34, 0x01});
  EXPECT_EQ(result.status, Status::error);
  EXPECT_EQ(upstream->udp_queries(), 0);
  EXPECT_EQ(forwarder_->counters().queries_sent.value(), 0U);
  EXPECT_EQ(forwarder_->counters().errors.value(), 1U);
}

// The io_context stops and goes away with a query in flight and the forwarder's teardown still
// queued: nothing may be touched after it is freed (ASan watches), and `done` is dropped with
// the rest of the io_context's handlers.
TEST(ForwarderTeardownTest, DestroyedAfterTheIoContextStopped) {
  auto upstream = FakeUpstream::start("127.0.0.1", Behaviour::silent);
  ASSERT_TRUE(upstream);
  auto calls = std::make_shared<std::atomic<int>>(0);
  {
    asio::io_context io;
    auto forwarder = std::make_unique<Forwarder>(io, std::vector{upstream->endpoint()}, 10000ms);
    forwarder->forward(make_query("orphan.example.test"), [calls](ForwardResult) { ++*calls; });
    std::thread runner([&] { io.run_for(2s); });
    EXPECT_TRUE(upstream->wait_for_udp_queries(1, 5s));
    io.stop();
    runner.join();
    forwarder.reset();
  }
  EXPECT_EQ(calls->load(), 0);
}

}  // namespace
}  // namespace pullthrough::dns
