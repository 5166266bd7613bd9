// TcpListener over real sockets on 127.0.0.1, port 0: the allow list, the bound on open
// connections, and closing.
#include "core/tcp_listener.hpp"

#include "core/asio.hpp"

#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <gtest/gtest.h>

#include "tests/core/eventually.hpp"

namespace pullthrough::core {
namespace {

using asio::ip::tcp;
using testing::eventually;

class TcpListenerTest : public ::testing::Test {
 protected:
  void start(std::vector<Cidr> allow, std::size_t max_connections,
             TcpListener::ConnectionExecutor pick = {}) {
    listener_ = std::make_unique<TcpListener>(
        io_, "test", std::vector<Endpoint>{*parse_endpoint("127.0.0.1:0")}, std::move(allow),
        max_connections, gate_, counters_, [this](AcceptedConnection connection) {
          std::lock_guard lock(mutex_);
          held_.push_back(std::move(connection));
        });
    if (pick) listener_->set_connection_executor(std::move(pick));
    listener_->bind();
    listener_->start("tcp", owner_);
    worker_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    listener_->close();
    {
      std::lock_guard lock(mutex_);
      held_.clear();
    }
    std::promise<void> drained;
    gate_.close([&] { drained.set_value(); });
    EXPECT_EQ(drained.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
    worker_.join();
  }

  tcp::endpoint server() const {
    return tcp::endpoint(asio::ip::make_address("127.0.0.1"), listener_->bound().at(0).port);
  }

  // True when the server ends the connection (EOF or reset) without sending anything.
  static bool ended_by_server(tcp::socket& socket) {
    boost::system::error_code ec;
    char byte = 0;
    socket.read_some(asio::buffer(&byte, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }

  std::size_t held() {
    std::lock_guard lock(mutex_);
    return held_.size();
  }

  asio::io_context io_;
  asio::io_context client_io_;
  Gate gate_;
  ListenerCounters counters_;
  std::shared_ptr<int> owner_ = std::make_shared<int>(0);
  std::unique_ptr<TcpListener> listener_;
  std::thread worker_;
  std::mutex mutex_;
  std::vector<AcceptedConnection> held_;
};

TEST_F(TcpListenerTest, ConnectionsPastTheBoundAreClosedAndCounted) {
  start({}, 2);
  tcp::socket a(client_io_), b(client_io_), c(client_io_);
  a.connect(server());
  b.connect(server());
  ASSERT_TRUE(eventually([&] { return held() == 2; }));
  EXPECT_EQ(listener_->open_connections(), 2U);
  c.connect(server());
  EXPECT_TRUE(ended_by_server(c));
  EXPECT_EQ(counters_.connections_over_limit.value(), 1U);
  EXPECT_EQ(counters_.connections_accepted.value(), 2U);

  // A place comes back when its connection is done with.
  {
    std::lock_guard lock(mutex_);
    held_.erase(held_.begin());
  }
  EXPECT_EQ(listener_->open_connections(), 1U);
  tcp::socket d(client_io_);
  d.connect(server());
  EXPECT_TRUE(eventually([&] { return held() == 2; }));
  EXPECT_EQ(counters_.connections_accepted.value(), 3U);
}

TEST_F(TcpListenerTest, ClientsOutsideTheAllowListAreRefusedAndCounted) {
  start({*Cidr::parse("10.0.0.0/8")}, 10);
  tcp::socket a(client_io_);
  a.connect(server());
  EXPECT_TRUE(ended_by_server(a));
  EXPECT_EQ(counters_.connections_refused.value(), 1U);
  EXPECT_EQ(held(), 0U);
  EXPECT_EQ(listener_->open_connections(), 0U);
}

TEST_F(TcpListenerTest, AcceptedConnectionsKnowTheirPeerAndHoldTheGate) {
  start({*Cidr::parse("127.0.0.0/8")}, 10);
  tcp::socket a(client_io_);
  a.connect(server());
  ASSERT_TRUE(eventually([&] { return held() == 1; }));
  std::lock_guard lock(mutex_);
  EXPECT_EQ(held_[0].peer.port, a.local_endpoint().port());
  EXPECT_EQ(held_[0].local.port, listener_->bound().at(0).port);
  EXPECT_TRUE(static_cast<bool>(held_[0].hold));
  // The accept loop holds the gate too, and the connection adds one.
  EXPECT_EQ(gate_.count(), 2U);
}

TEST_F(TcpListenerTest, AConnectionExecutorDecidesWhereEachConnectionLives) {
  asio::io_context elsewhere;
  std::atomic<int> picked{0};
  start({}, 8, [&]() -> asio::any_io_executor {
    ++picked;
    return elsewhere.get_executor();
  });
  tcp::socket client(client_io_);
  client.connect(server());
  ASSERT_TRUE(eventually([&] { return held() == 1; }));
  // Once for the connection accepted, once for the socket that waits for the next one.
  EXPECT_TRUE(eventually([&] { return picked.load() == 2; }));
  std::lock_guard lock(mutex_);
  EXPECT_TRUE(held_[0].socket.get_executor() == asio::any_io_executor(elsewhere.get_executor()));
  held_.clear();  // the socket goes before its io_context does
}

TEST_F(TcpListenerTest, CloseStopsAccepting) {
  start({}, 10);
  const auto where = server();
  listener_->close();
  // The accept loop has left the gate once the acceptor is closed.
  EXPECT_TRUE(eventually([&] { return gate_.count() == 0; }));
  tcp::socket a(client_io_);
  boost::system::error_code ec;
  a.connect(where, ec);
  EXPECT_TRUE(ec) << "connected after close()";
}

}  // namespace
}  // namespace pullthrough::core
