#include "proxy/upstream/pool.hpp"

#include <chrono>
#include <memory>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <gtest/gtest.h>
#include <poll.h>

#include "tests/core/fake_clock.hpp"

namespace pullthrough::proxy {
namespace {

using tcp = asio::ip::tcp;
using PlainConnection = StreamConnection<beast::tcp_stream>;

// A pooled connection to a listener on 127.0.0.1 (port 0), and the server's end of it.
class ConnectionPoolTest : public ::testing::Test {
 protected:
  ConnectionPoolTest() : acceptor_(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {
    origin_.scheme = "http";
    origin_.host = "127.0.0.1";
    origin_.port = acceptor_.local_endpoint().port();
  }

  std::unique_ptr<Connection> connect(tcp::socket& server_end) {
    beast::tcp_stream stream(io_);
    stream.socket().connect(acceptor_.local_endpoint());
    acceptor_.accept(server_end);
    client_fd_ = stream.socket().native_handle();
    return std::make_unique<PlainConnection>(origin_, std::move(stream));
  }

  // Waits (up to 5 s) until the last connected client end has something to read: the server's
  // FIN or bytes. An event to wait for, not a time.
  bool client_end_readable() const {
    pollfd p{client_fd_, POLLIN, 0};
    return ::poll(&p, 1, 5000) == 1;
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  Origin origin_;
  int client_fd_ = -1;
  core::testing::FakeClock clock_;
  ConnectionPool pool_{io_, clock_, 4, std::chrono::seconds(30)};
};

TEST_F(ConnectionPoolTest, AnOpenIdleConnectionIsHandedOutAgain) {
  tcp::socket server(io_);
  pool_.put(connect(server));
  EXPECT_EQ(pool_.idle(), 1U);
  EXPECT_NE(pool_.take(origin_), nullptr);
  EXPECT_EQ(pool_.idle(), 0U);
}

TEST_F(ConnectionPoolTest, AConnectionTheServerClosedIsDroppedNotHandedOut) {
  tcp::socket server(io_);
  pool_.put(connect(server));
  server.close();  // a server whose idle limit is shorter than the pool's
  ASSERT_TRUE(client_end_readable());
  auto taken = pool_.take(origin_);
  EXPECT_EQ(taken, nullptr);
  EXPECT_EQ(pool_.idle(), 0U);
}

TEST_F(ConnectionPoolTest, AConnectionWithBytesNobodyAskedForIsDropped) {
  tcp::socket server(io_);
  pool_.put(connect(server));
  const std::string stray = "HTTP/1.1 408 Request Timeout\r\n\r\n";
  asio::write(server, asio::buffer(stray));
  ASSERT_TRUE(client_end_readable());
  EXPECT_EQ(pool_.take(origin_), nullptr);
}

TEST_F(ConnectionPoolTest, TheMostRecentOpenConnectionIsTakenPastAClosedOne) {
  tcp::socket first(io_);
  tcp::socket second(io_);
  auto a = connect(first);
  auto b = connect(second);
  Connection* open = a.get();
  pool_.put(std::move(a));
  pool_.put(std::move(b));  // the most recent: tried first
  second.close();
  ASSERT_TRUE(client_end_readable());
  auto taken = pool_.take(origin_);
  EXPECT_EQ(taken.get(), open);
}

TEST_F(ConnectionPoolTest, AConnectionIdlePastTheTimeoutIsDropped) {
  tcp::socket server(io_);
  pool_.put(connect(server));
  clock_.advance(std::chrono::seconds(30));
  EXPECT_EQ(pool_.take(origin_), nullptr);
}

}  // namespace
}  // namespace pullthrough::proxy
