#include "core/http_service.hpp"

#include "core/asio.hpp"

#include <future>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/core/eventually.hpp"

namespace pullthrough::core {
namespace {

using asio::ip::tcp;
using ::testing::HasSubstr;

// Runs an HttpService on 127.0.0.1:0 with one worker thread for the length of a test.
class HttpServiceTest : public ::testing::Test {
 protected:
  void start(std::vector<Cidr> allow = {}, HttpLimits limits = {}) {
    service_ = std::make_unique<HttpService>(
        io_, "test-http", std::vector<Endpoint>{*parse_endpoint("127.0.0.1:0")}, std::move(allow),
        [this](const HttpExchange& exchange) {
          ++handled_;
          HttpResponse res{http::status::ok, 11};
          res.set(http::field::content_type, "text/plain");
          res.body() = "hello " + std::string(exchange.request.target()) + " from " +
                       exchange.peer.address.to_string();
          return res;
        },
        limits);
    service_->start();
    port_ = service_->bound_endpoints().at(0).port;
    worker_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    if (!worker_.joinable()) return;
    std::promise<void> drained;
    asio::post(io_, [&] { service_->stop([&] { drained.set_value(); }); });
    EXPECT_EQ(drained.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
    worker_.join();
  }

  // Sends raw bytes and returns everything the server writes until it closes (or 5 s pass).
  std::string exchange(const std::string& bytes, bool half_close = true) {
    asio::io_context client;
    tcp::socket socket(client);
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    // The server may close first (a refused client, a rejected request), so the write and the
    // half-close can fail with EPIPE, ECONNRESET or ENOTCONN; what the server wrote still counts.
    boost::system::error_code ignored;
    asio::write(socket, asio::buffer(bytes), ignored);
    if (half_close) socket.shutdown(tcp::socket::shutdown_send, ignored);
    struct timeval timeout {
      5, 0
    };
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    std::string out;
    char buffer[4096];
    boost::system::error_code ec;
    for (;;) {
      auto n = socket.read_some(asio::buffer(buffer), ec);
      if (ec) break;
      out.append(buffer, n);
    }
    return out;
  }

  // The server counts a connection's end after it closed the socket, so a client that saw the
  // close may look before the count: wait up to 3 s for it.
  template <typename Counter>
  static std::uint64_t settled(const Counter& counter, std::uint64_t expected) {
    testing::eventually([&] { return counter.value() == expected; });
    return counter.value();
  }

  asio::io_context io_;
  std::unique_ptr<HttpService> service_;
  std::thread worker_;
  std::uint16_t port_ = 0;
  std::atomic<int> handled_{0};
};

TEST_F(HttpServiceTest, AnswersAndKeepsAlive) {
  start();
  auto out = exchange(
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(out, HasSubstr("hello /a from 127.0.0.1"));
  EXPECT_THAT(out, HasSubstr("hello /b from 127.0.0.1"));
  EXPECT_THAT(out, HasSubstr("Server: pullthrough"));
  EXPECT_EQ(handled_, 2);
  EXPECT_EQ(service_->counters().requests.value(), 2U);
}

TEST_F(HttpServiceTest, HeadSendsLengthWithoutBody) {
  start();
  auto out = exchange("HEAD /abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(out, HasSubstr("Content-Length: 25"));
  EXPECT_THAT(out, ::testing::EndsWith("\r\n\r\n"));
}

TEST_F(HttpServiceTest, RequestWithABodyIsRefused) {
  start();
  auto out = exchange("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_THAT(out, HasSubstr("HTTP/1.1 413"));
  EXPECT_EQ(handled_, 0);
  EXPECT_EQ(service_->counters().bad_requests.value(), 1U);
}

// What POST /enroll on the CA page relies on: curl -X POST sends no length, wget --post-data= a
// zero one, and neither counts as a body.
TEST_F(HttpServiceTest, APostWithoutABodyIsAnswered) {
  start();
  auto out = exchange(
      "POST /a HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(out, HasSubstr("hello /a from 127.0.0.1"));
  EXPECT_THAT(out, HasSubstr("hello /b from 127.0.0.1"));
  EXPECT_EQ(handled_, 2);
}

TEST_F(HttpServiceTest, AChunkedBodyIsRefused) {
  start();
  auto out = exchange(
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\n\r\n");
  EXPECT_THAT(out, HasSubstr("HTTP/1.1 413"));
  EXPECT_EQ(handled_, 0);
  EXPECT_EQ(service_->counters().bad_requests.value(), 1U);
}

TEST_F(HttpServiceTest, OversizedHeaderIsRefused) {
  HttpLimits limits;
  limits.max_header_bytes = 1024;
  start({}, limits);
  auto out = exchange("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4096, 'a') + "\r\n\r\n");
  EXPECT_THAT(out, HasSubstr("HTTP/1.1 431"));
  EXPECT_EQ(handled_, 0);
}

TEST_F(HttpServiceTest, GarbageIsABadRequest) {
  start();
  auto out = exchange(std::string("\x16\x03\x01\x00\xa5garbage\r\n\r\n", 16));
  EXPECT_THAT(out, HasSubstr("HTTP/1.1 400"));
  EXPECT_EQ(handled_, 0);
}

TEST_F(HttpServiceTest, ClientOutsideTheAllowListIsClosedWithoutAnAnswer) {
  start({*Cidr::parse("10.0.0.0/8")});
  auto out = exchange("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(out, "");
  EXPECT_EQ(handled_, 0);
  EXPECT_EQ(settled(service_->listener_counters().connections_refused, 1), 1U);
}

TEST_F(HttpServiceTest, SilentClientTimesOut) {
  HttpLimits limits;
  limits.read_timeout = std::chrono::milliseconds(200);
  start({}, limits);
  auto began = std::chrono::steady_clock::now();
  auto out = exchange("GET / HTTP/1.1\r\n", false);
  EXPECT_EQ(out, "");
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(3));
  EXPECT_EQ(settled(service_->counters().timeouts, 1), 1U);
}

TEST_F(HttpServiceTest, StopClosesIdleKeepAliveConnectionsAtOnce) {
  start();
  asio::io_context client;
  tcp::socket socket(client);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
  asio::write(socket, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
  char buffer[1024];
  auto n = socket.read_some(asio::buffer(buffer));  // the answer; the connection stays open
  ASSERT_GT(n, 0U);
  std::promise<void> drained;
  auto began = std::chrono::steady_clock::now();
  asio::post(io_, [&] { service_->stop([&] { drained.set_value(); }); });
  ASSERT_EQ(drained.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(2));
  worker_.join();
  boost::system::error_code ec;
  socket.read_some(asio::buffer(buffer), ec);
  EXPECT_TRUE(ec);  // closed by the server
}

}  // namespace
}  // namespace pullthrough::core
