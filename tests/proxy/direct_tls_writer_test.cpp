// DirectTlsWriter on real loopback connections: the TLS front door on 127.0.0.1:0 hands each
// established stream to a script that writes with the writer, and a blocking TLS client (the
// peer) reads, trickles, stops reading or goes away.
#include "proxy/direct_tls_writer.hpp"

#include "core/asio.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include "config/loader.hpp"
#include "proxy/front_door.hpp"
#include "tests/certs/test_support.hpp"
#include "tests/proxy/server_tls_fixture.hpp"
#include "tests/proxy/test_support.hpp"
#include "tests/proxy/tls_client.hpp"

namespace pullthrough::proxy {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using testing::pattern;
using testing::TlsClient;

// The timeout of the stall tests; their checks allow seconds more, for ASan on a loaded machine.
constexpr milliseconds kTimeout{200};
constexpr auto kLate = std::chrono::seconds(3);
// Far more than the kernel buffers on both sides hold once they are made small.
constexpr std::size_t kStallBytes = std::size_t{8} * 1024 * 1024;
constexpr int kSmallBuffer = 16 * 1024;

struct Write {
  error_code ec;
  Clock::duration took{};
  // In whole milliseconds, so that a failed check prints a number.
  std::int64_t took_ms() const { return std::chrono::duration_cast<milliseconds>(took).count(); }
};

// What a script tells the test thread, which waits for it with a bound.
class Report {
 public:
  void add(Write write) {
    std::lock_guard lock(mutex_);
    writes_.push_back(write);
    changed_.notify_all();
  }
  void add_usable(bool usable) {
    std::lock_guard lock(mutex_);
    usable_.push_back(usable);
  }
  void finish() {
    std::lock_guard lock(mutex_);
    finished_ = true;
    changed_.notify_all();
  }
  // True when the script finished within `limit`.
  bool wait(Clock::duration limit = std::chrono::seconds(15)) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, limit, [this] { return finished_; });
  }
  std::vector<Write> writes() const {
    std::lock_guard lock(mutex_);
    return writes_;
  }
  std::vector<bool> usable() const {
    std::lock_guard lock(mutex_);
    return usable_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Write> writes_;
  std::vector<bool> usable_;
  bool finished_ = false;
};

std::span<const std::uint8_t> bytes_of(const std::string& text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

asio::awaitable<Write> timed_write(DirectTlsWriter& writer, const std::string& bytes,
                                   milliseconds timeout, bool flush = true) {
  auto start = Clock::now();
  error_code ec = co_await writer.write(bytes_of(bytes), timeout, flush);
  co_return Write{ec, Clock::now() - start};
}

asio::awaitable<error_code> asio_write(TlsStream& stream, const std::string& bytes) {
  error_code ec;
  co_await asio::async_write(stream, asio::buffer(bytes),
                             asio::redirect_error(asio::use_awaitable, ec));
  co_return ec;
}

asio::awaitable<void> sleep_for(Clock::duration duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  error_code ignored;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

// The socket's kernel send buffer made small, so that a peer that does not read stalls the
// writer after a few records rather than after megabytes.
void shrink_send_buffer(TlsStream& stream) {
  beast::get_lowest_layer(stream).socket().set_option(
      asio::socket_base::send_buffer_size(kSmallBuffer));
}

class DirectTlsWriterTest : public ::testing::Test {
 protected:
  using Script = std::function<asio::awaitable<void>(TlsStream&)>;

  // As serve() does. The socket BIO writes with write(2), not send(MSG_NOSIGNAL) as Asio does,
  // and write(2) raises SIGPIPE on a connection whose reset has already been reported: the
  // writer's error code is what these tests check, not whether the process survives the signal.
  static void SetUpTestSuite() { std::signal(SIGPIPE, SIG_IGN); }

  void SetUp() override {
    config_ = *config::load_string(
                   "proxy: {listen: [\"127.0.0.1:0\"], allow: [\"127.0.0.0/8\"]}\n"
                   "registries:\n"
                   "  - {host: quay.io}\n",
                   "t.yaml")
                   .config;
    front_door_ = std::make_unique<TlsFrontDoor>(
        io_, config_, server_.tls, [this](TlsConnection connection) -> asio::awaitable<void> {
          co_await script_(*connection.stream);
          report_.finish();
        });
    front_door_->start();
    port_ = front_door_->bound_endpoints().at(0).port;
    worker_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    client_.reset();  // a script still writing fails, so the door can drain
    std::promise<void> drained;
    asio::post(io_, [&] { front_door_->stop([&] { drained.set_value(); }); });
    EXPECT_EQ(drained.get_future().wait_for(std::chrono::seconds(15)), std::future_status::ready);
    io_.stop();
    worker_.join();
  }

  // Sets the script that the next connection runs, then connects.
  TlsClient& connect(Script script, int receive_buffer = 0) {
    script_ = std::move(script);
    client_ =
        std::make_unique<TlsClient>(port_, server_.ca.certificate_pem(), "quay.io", receive_buffer);
    return *client_;
  }

  // A client that reads nothing through a small receive buffer, connected to a script that
  // shrinks its send buffer and writes `body` `times` times with one writer, each with `timeout`.
  TlsClient& connect_stalled(const std::string& body, milliseconds timeout, int times = 1) {
    return connect(
        [this, body, timeout, times](TlsStream& stream) -> asio::awaitable<void> {
          shrink_send_buffer(stream);
          DirectTlsWriter writer(stream);
          for (int i = 0; i < times; ++i) report_.add(co_await timed_write(writer, body, timeout));
        },
        kSmallBuffer);
  }

  certs::testing::ScratchDir dir_;
  config::Config config_;
  testing::TestServerTls server_{config_, dir_.path()};
  asio::io_context io_;
  std::unique_ptr<TlsFrontDoor> front_door_;
  std::thread worker_;
  std::uint16_t port_ = 0;
  Script script_;
  Report report_;
  std::unique_ptr<TlsClient> client_;
};

// --- what arrives -----------------------------------------------------------------------------

class DirectTlsWriterSizeTest : public DirectTlsWriterTest,
                                public ::testing::WithParamInterface<std::size_t> {};

// Between two Asio writes, as a response's header and body go: the bytes arrive whole and in
// order, and Asio can use the stream again once the writer is gone.
TEST_P(DirectTlsWriterSizeTest, BytesArriveIntactAndInOrderBetweenAsioWrites) {
  const std::string body = pattern(GetParam());
  auto& client = connect([this, body](TlsStream& stream) -> asio::awaitable<void> {
    shrink_send_buffer(stream);
    if (co_await asio_write(stream, "<<")) co_return;
    {
      DirectTlsWriter writer(stream);
      report_.add_usable(writer.usable());
      report_.add(co_await timed_write(writer, body, std::chrono::seconds(10)));
    }
    co_await asio_write(stream, ">>");
  });
  const std::string expected = "<<" + body + ">>";
  const std::string received = client.read_exactly(expected.size());
  // Not EXPECT_EQ: a failure would print megabytes.
  EXPECT_TRUE(received == expected)
      << "first difference at byte "
      << std::mismatch(received.begin(), received.end(), expected.begin()).first - received.begin();
  ASSERT_TRUE(report_.wait());
  EXPECT_EQ(report_.usable(), std::vector<bool>{true});
  ASSERT_EQ(report_.writes().size(), 1U);
  EXPECT_FALSE(report_.writes()[0].ec) << report_.writes()[0].ec.message();
}

// 16384 is one full TLS record; the last size is far more than the small send buffer holds, so
// the writer waits for the socket many times while the client reads.
INSTANTIATE_TEST_SUITE_P(Sizes, DirectTlsWriterSizeTest,
                         ::testing::Values(std::size_t{0}, std::size_t{1}, std::size_t{16384},
                                           std::size_t{16385}, kStallBytes));

// --- gathering ---------------------------------------------------------------------------------

// A body written in pieces that each say more follows, and a last empty write that flushes: what
// the gather buffer held back goes out whole and in order, through a send buffer far smaller
// than the body (so the buffer meets a full socket many times).
TEST_F(DirectTlsWriterTest, PiecesHeldBackArriveWholeAfterTheFlush) {
  const std::string body = pattern(kStallBytes);
  // Odd sizes, so that records and writes to the socket fall across the pieces' edges.
  const std::vector<std::size_t> cuts = {1, 16385, 100000, 262145, 1000003, kStallBytes};
  auto& client = connect([this, body, cuts](TlsStream& stream) -> asio::awaitable<void> {
    shrink_send_buffer(stream);
    DirectTlsWriter writer(stream);
    std::size_t from = 0;
    for (std::size_t to : cuts) {
      report_.add(co_await timed_write(writer, body.substr(from, to - from),
                                       std::chrono::seconds(10), false));
      from = to;
    }
    report_.add(co_await timed_write(writer, "", std::chrono::seconds(10), true));
  });
  const std::string received = client.read_exactly(body.size());
  EXPECT_TRUE(received == body)
      << "first difference at byte "
      << std::mismatch(received.begin(), received.end(), body.begin()).first - received.begin();
  ASSERT_TRUE(report_.wait());
  ASSERT_EQ(report_.writes().size(), cuts.size() + 1);
  for (const auto& write : report_.writes()) EXPECT_FALSE(write.ec) << write.ec.message();
}

// Records of writes that say more follows stay in the gather buffer, smaller than it, until a
// write flushes: the peer gets its first byte only after the script has begun that write.
TEST_F(DirectTlsWriterTest, WritesThatSayMoreFollowsWaitForTheFlush) {
  auto flushing = std::make_shared<std::atomic<bool>>(false);
  const std::string body = pattern(3 * 10000);
  auto& client = connect([this, body, flushing](TlsStream& stream) -> asio::awaitable<void> {
    DirectTlsWriter writer(stream);
    for (int i = 0; i < 3; ++i) {
      report_.add(co_await timed_write(writer, body.substr(i * 10000, 10000), kTimeout, false));
    }
    // Long enough for records sent too early to reach the peer first.
    co_await sleep_for(milliseconds(300));
    flushing->store(true);
    report_.add(co_await timed_write(writer, "", kTimeout, true));
  });
  const std::string first = client.read_exactly(1);
  EXPECT_TRUE(flushing->load()) << "a record went out before the flush";
  EXPECT_TRUE(first + client.read_exactly(body.size() - 1) == body);
  ASSERT_TRUE(report_.wait());
  ASSERT_EQ(report_.writes().size(), 4U);
  for (const auto& write : report_.writes()) EXPECT_FALSE(write.ec) << write.ec.message();
}

// --- when it may be used ----------------------------------------------------------------------

// The first writer has taken the write side; a second one must not take it from it (nor put
// Asio's BIO back when it goes), and once the first is gone the stream takes a new one.
TEST_F(DirectTlsWriterTest, ASecondWriterOnTheSameStreamIsNotUsableAndLeavesTheFirstAlone) {
  auto& client = connect([this](TlsStream& stream) -> asio::awaitable<void> {
    {
      DirectTlsWriter first(stream);
      report_.add_usable(first.usable());
      {
        DirectTlsWriter second(stream);
        report_.add_usable(second.usable());
      }
      report_.add(co_await timed_write(first, "one,", kTimeout));
    }
    DirectTlsWriter third(stream);
    report_.add_usable(third.usable());
    report_.add(co_await timed_write(third, "two", kTimeout));
  });
  EXPECT_EQ(client.read_exactly(7), "one,two");
  ASSERT_TRUE(report_.wait());
  EXPECT_EQ(report_.usable(), (std::vector<bool>{true, false, true}));
  ASSERT_EQ(report_.writes().size(), 2U);
  EXPECT_FALSE(report_.writes()[0].ec);
  EXPECT_FALSE(report_.writes()[1].ec);
}

// The writer replaces the write side only: what the stream had already read and decrypted for
// the next read is still there for it after the writer is gone.
TEST_F(DirectTlsWriterTest, BytesTheStreamReadAheadAreStillThereAfterTheWriter) {
  auto done = std::make_shared<std::promise<std::string>>();
  auto& client = connect([this, done](TlsStream& stream) -> asio::awaitable<void> {
    std::string first(6, '\0');
    error_code ec;
    // One record holds both lines: reading the first leaves the second decrypted in the stream.
    co_await asio::async_read(stream, asio::buffer(first),
                              asio::redirect_error(asio::use_awaitable, ec));
    {
      DirectTlsWriter writer(stream);
      report_.add_usable(writer.usable());
      report_.add(co_await timed_write(writer, "reply", kTimeout));
    }
    std::string second(7, '\0');
    co_await asio::async_read(stream, asio::buffer(second),
                              asio::redirect_error(asio::use_awaitable, ec));
    done->set_value(ec ? "read failed: " + ec.message() : first + second);
  });
  client.send("first\nsecond\n");
  EXPECT_EQ(client.read_exactly(5), "reply");
  auto both = done->get_future();
  ASSERT_EQ(both.wait_for(std::chrono::seconds(15)), std::future_status::ready);
  EXPECT_EQ(both.get(), "first\nsecond\n");
  ASSERT_TRUE(report_.wait());
  EXPECT_EQ(report_.usable(), std::vector<bool>{true});
}

// --- the deadline -----------------------------------------------------------------------------

// Regression (#11): the first records go out, then the socket stalls. The old writer re-armed its
// timer after the first successful SSL_write_ex, which cancelled the pending wait, and from then
// on nothing bounded the stall.
TEST_F(DirectTlsWriterTest, APeerThatStopsReadingGetsATimeoutNeitherEarlyNorLate) {
  const std::string body = pattern(kStallBytes);
  auto& client = connect_stalled(body, kTimeout);
  ASSERT_TRUE(report_.wait());  // the peer reads nothing until the writer has given up
  auto writes = report_.writes();
  ASSERT_EQ(writes.size(), 1U);
  EXPECT_EQ(writes[0].ec, beast::error::timeout) << writes[0].ec.message();
  EXPECT_GE(writes[0].took_ms(), kTimeout.count());
  EXPECT_LT(writes[0].took_ms(), (kTimeout + kLate).count());
  // Some records went out before the stall, never the whole body.
  std::size_t received = client.drain();
  EXPECT_GT(received, 0U);
  EXPECT_LT(received, body.size());
}

// Each call has the whole timeout: a call that retries the bytes of one that timed out (as
// OpenSSL requires after a write it could not finish) waits its own timeout again.
TEST_F(DirectTlsWriterTest, AStalledWriteRetriedGetsTheFullTimeoutAgain) {
  const std::string body = pattern(kStallBytes);
  connect_stalled(body, kTimeout, 2);
  ASSERT_TRUE(report_.wait());
  auto writes = report_.writes();
  ASSERT_EQ(writes.size(), 2U);
  for (const auto& write : writes) {
    EXPECT_EQ(write.ec, beast::error::timeout) << write.ec.message();
    EXPECT_GE(write.took_ms(), kTimeout.count());
    EXPECT_LT(write.took_ms(), (kTimeout + kLate).count());
  }
}

// The deadline is the call's: neither the writer's age nor an earlier write's start shortens the
// time a later write is given.
TEST_F(DirectTlsWriterTest, ALaterWriteIsTimedFromItsOwnStart) {
  const std::string body = pattern(kStallBytes);
  connect(
      [this, body](TlsStream& stream) -> asio::awaitable<void> {
        shrink_send_buffer(stream);
        DirectTlsWriter writer(stream);
        co_await sleep_for(2 * kTimeout);
        report_.add(co_await timed_write(writer, "small", kTimeout));
        co_await sleep_for(2 * kTimeout);
        report_.add(co_await timed_write(writer, body, kTimeout));
      },
      kSmallBuffer);
  ASSERT_TRUE(report_.wait());
  auto writes = report_.writes();
  ASSERT_EQ(writes.size(), 2U);
  EXPECT_FALSE(writes[0].ec) << writes[0].ec.message();
  EXPECT_EQ(writes[1].ec, beast::error::timeout) << writes[1].ec.message();
  EXPECT_GE(writes[1].took_ms(), kTimeout.count());
  EXPECT_LT(writes[1].took_ms(), (kTimeout + kLate).count());
}

// One deadline for the whole call, not one per wait: a peer that keeps taking a little, so that
// no single wait lasts the timeout, still cannot hold the call past it.
TEST_F(DirectTlsWriterTest, APeerReadingATrickleIsCutOffAtTheCallsDeadline) {
  constexpr milliseconds kCallTimeout{300};
  const std::string body = pattern(kStallBytes);
  auto& client = connect_stalled(body, kCallTimeout);
  // About 1.6 MB/s: the whole body would take five seconds. Ends when the server closes.
  std::size_t received = 0;
  for (;;) {
    error_code ec;
    received += client.read_some(16384, ec).size();
    if (ec) break;
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_TRUE(report_.wait());
  auto writes = report_.writes();
  ASSERT_EQ(writes.size(), 1U);
  EXPECT_EQ(writes[0].ec, beast::error::timeout) << writes[0].ec.message();
  EXPECT_GE(writes[0].took_ms(), kCallTimeout.count());
  EXPECT_LT(writes[0].took_ms(), (kCallTimeout + kLate).count());
  EXPECT_LT(received, body.size());
}

// --- a peer that goes away --------------------------------------------------------------------

// The peer has closed its socket before the write: the socket refuses the bytes, and the writer
// says so instead of waiting out its timeout.
TEST_F(DirectTlsWriterTest, APeerThatHasClosedFailsTheWrite) {
  const std::string body = pattern(kStallBytes);
  auto& client = connect([this, body](TlsStream& stream) -> asio::awaitable<void> {
    // Waits for the close on the socket itself, so that the TLS stream has seen no error.
    error_code ec;
    co_await beast::get_lowest_layer(stream).socket().async_wait(
        asio::socket_base::wait_read, asio::redirect_error(asio::use_awaitable, ec));
    DirectTlsWriter writer(stream);
    report_.add(co_await timed_write(writer, body, std::chrono::seconds(10)));
  });
  client.close(false);
  ASSERT_TRUE(report_.wait());
  auto writes = report_.writes();
  ASSERT_EQ(writes.size(), 1U);
  EXPECT_TRUE(writes[0].ec);
  EXPECT_NE(writes[0].ec, beast::error::timeout) << writes[0].ec.message();
  EXPECT_LT(writes[0].took_ms(), 5000);
}

// The peer resets the connection while the writer waits for the socket: the wait ends with the
// reset, long before the timeout.
TEST_F(DirectTlsWriterTest, APeerThatResetsWhileTheWriterWaitsFailsTheWrite) {
  const std::string body = pattern(kStallBytes);
  auto& client = connect_stalled(body, std::chrono::seconds(10));
  std::this_thread::sleep_for(milliseconds(300));  // the buffers fill within a few ms
  client.close(true);
  ASSERT_TRUE(report_.wait());
  auto writes = report_.writes();
  ASSERT_EQ(writes.size(), 1U);
  EXPECT_TRUE(writes[0].ec);
  EXPECT_NE(writes[0].ec, beast::error::timeout) << writes[0].ec.message();
  EXPECT_LT(writes[0].took_ms(), 5000);
}

}  // namespace
}  // namespace pullthrough::proxy
