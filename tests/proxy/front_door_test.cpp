#include "proxy/front_door.hpp"

#include "core/asio.hpp"

#include <future>
#include <thread>

#include <boost/asio/ssl.hpp>
#include <gtest/gtest.h>

#include "config/loader.hpp"
#include "tests/certs/test_support.hpp"
#include "tests/core/eventually.hpp"
#include "tests/proxy/server_tls_fixture.hpp"

namespace pullthrough::proxy {
namespace {

using asio::ip::tcp;

struct Seen {
  std::string registry;
  std::string server_name;
};

// A TLS connection from `from` (a loopback address: Linux routes all of 127.0.0.0/8 to lo, so a
// client socket may be bound to any of them) that stays open until destroyed.
class HeldConnection {
 public:
  HeldConnection(std::uint16_t port, const std::string& ca_pem, const std::string& from)
      : tls_(ssl::context::tls_client), stream_(io_, tls_) {
    tls_.add_certificate_authority(asio::buffer(ca_pem));
    tls_.set_verify_mode(ssl::verify_peer);
    SSL_set_tlsext_host_name(stream_.native_handle(), "quay.io");
    stream_.set_verify_callback(ssl::host_name_verification("quay.io"));
    auto& socket = stream_.next_layer();
    socket.open(tcp::v4());
    socket.bind(tcp::endpoint(asio::ip::make_address(from), 0));
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    boost::system::error_code ec;
    stream_.handshake(ssl::stream_base::client, ec);
    if (ec) {
      greeting_ = "handshake failed: " + ec.message();
      return;
    }
    greeting_ = read(3);
  }

  // "ok\n" once the handler took the connection, or what went wrong.
  const std::string& greeting() const { return greeting_; }

  // Sends `bytes` and reads as many back: the handler echoes while the connection lasts.
  std::string echo(const std::string& bytes) {
    boost::system::error_code ec;
    asio::write(stream_, asio::buffer(bytes), ec);
    return ec ? "write failed: " + ec.message() : read(bytes.size());
  }

 private:
  std::string read(std::size_t count) {
    std::string out(count, '\0');
    boost::system::error_code ec;
    asio::read(stream_, asio::buffer(out), ec);
    return ec ? "read failed: " + ec.message() : out;
  }

  asio::io_context io_;
  ssl::context tls_;
  ssl::stream<tcp::socket> stream_;
  std::string greeting_;
};

// A front door on 127.0.0.1:0 whose handler records what it was handed, answers "ok\n", then
// echoes what the client sends until it hangs up.
class FrontDoorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = *config::load_string(
                   "proxy: {listen: [\"127.0.0.1:0\"], allow: [\"127.0.0.0/8\"]}\n"
                   "registries:\n"
                   "  - {host: registry-1.docker.io, aliases: [docker.io]}\n"
                   "  - {host: quay.io}\n",
                   "t.yaml")
                   .config;
    front_door_ = std::make_unique<TlsFrontDoor>(
        io_, config_, server_.tls,
        [this](TlsConnection connection) -> asio::awaitable<void> {
          {
            std::lock_guard lock(mutex_);
            seen_.push_back(Seen{connection.registry->host, connection.server_name});
          }
          boost::system::error_code ec;
          auto& stream = *connection.stream;
          co_await asio::async_write(stream, asio::buffer("ok\n", 3),
                                     asio::redirect_error(asio::use_awaitable, ec));
          char byte = 0;
          while (!ec) {
            co_await stream.async_read_some(asio::buffer(&byte, 1),
                                            asio::redirect_error(asio::use_awaitable, ec));
            if (ec) break;
            co_await asio::async_write(stream, asio::buffer(&byte, 1),
                                       asio::redirect_error(asio::use_awaitable, ec));
          }
          co_await stream.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
        },
        limits_);
    front_door_->start();
    port_ = front_door_->bound_endpoints().at(0).port;
    worker_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    std::promise<void> drained;
    asio::post(io_, [&] { front_door_->stop([&] { drained.set_value(); }); });
    EXPECT_EQ(drained.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
    worker_.join();
  }

  // Connects with TLS, SNI `sni` (none when empty), verifying against our CA for `verify_host`.
  // Returns what the server sent, or "handshake failed: <reason>".
  std::string connect(const std::string& sni, const std::string& verify_host,
                      int max_version = TLS1_3_VERSION) {
    asio::io_context client_io;
    ssl::context client_tls(ssl::context::tls_client);
    client_tls.add_certificate_authority(asio::buffer(server_.ca.certificate_pem()));
    client_tls.set_verify_mode(ssl::verify_peer);
    SSL_CTX_set_max_proto_version(client_tls.native_handle(), max_version);
    ssl::stream<tcp::socket> stream(client_io, client_tls);
    if (!sni.empty()) SSL_set_tlsext_host_name(stream.native_handle(), sni.c_str());
    stream.set_verify_callback(ssl::host_name_verification(verify_host));
    stream.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    boost::system::error_code ec;
    stream.handshake(ssl::stream_base::client, ec);
    if (ec) return "handshake failed: " + ec.message();
    std::string out(3, '\0');
    asio::read(stream, asio::buffer(out), ec);
    return ec ? "read failed: " + ec.message() : out;
  }

  certs::testing::ScratchDir dir_;
  config::Config config_;
  testing::TestServerTls server_{config_, dir_.path()};
  asio::io_context io_;
  FrontDoorLimits limits_;
  std::unique_ptr<TlsFrontDoor> front_door_;
  std::thread worker_;
  std::uint16_t port_ = 0;
  std::mutex mutex_;
  std::vector<Seen> seen_;
};

TEST_F(FrontDoorTest, InterceptedNameGetsAVerifiedCertificateAndItsRegistry) {
  EXPECT_EQ(connect("quay.io", "quay.io"), "ok\n");
  EXPECT_EQ(connect("docker.io", "docker.io"), "ok\n");
  std::lock_guard lock(mutex_);
  ASSERT_EQ(seen_.size(), 2U);
  EXPECT_EQ(seen_[0].registry, "quay.io");
  EXPECT_EQ(seen_[1].registry, "registry-1.docker.io");
  EXPECT_EQ(seen_[1].server_name, "docker.io");
  EXPECT_EQ(front_door_->counters().handshakes_completed.value(), 2U);
}

// Regression: the count was the gate's, which also holds one place per accept loop, so the
// /metrics gauge showed a connection when there was none.
TEST_F(FrontDoorTest, OpenConnectionsCountsConnectionsOnly) {
  EXPECT_EQ(front_door_->open_connections(), 0U);
  EXPECT_EQ(connect("quay.io", "quay.io"), "ok\n");
  EXPECT_TRUE(core::testing::eventually([this] { return front_door_->open_connections() == 0; }));
}

TEST_F(FrontDoorTest, ServerNameMatchesCaseInsensitively) {
  EXPECT_EQ(connect("QUAY.Io", "quay.io"), "ok\n");
}

TEST_F(FrontDoorTest, Tls12Works) {
  EXPECT_EQ(connect("quay.io", "quay.io", TLS1_2_VERSION), "ok\n");
}

TEST_F(FrontDoorTest, OtherNameFailsTheHandshake) {
  EXPECT_NE(connect("example.com", "example.com").find("handshake failed"), std::string::npos);
  EXPECT_EQ(server_.tls.counters().names_refused.value(), 1U);
  std::lock_guard lock(mutex_);
  EXPECT_TRUE(seen_.empty());
}

TEST_F(FrontDoorTest, NoServerNameFailsTheHandshake) {
  EXPECT_NE(connect("", "quay.io").find("handshake failed"), std::string::npos);
  EXPECT_EQ(server_.tls.counters().no_name_refused.value(), 1U);
  std::lock_guard lock(mutex_);
  EXPECT_TRUE(seen_.empty());
}

TEST_F(FrontDoorTest, GarbageInsteadOfAClientHelloIsDropped) {
  asio::io_context client;
  tcp::socket socket(client);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
  asio::write(socket, asio::buffer(std::string("GET / HTTP/1.1\r\n\r\n")));
  char buffer[256];
  boost::system::error_code ec;
  while (!ec) socket.read_some(asio::buffer(buffer), ec);
  EXPECT_EQ(front_door_->counters().handshakes_failed.value(), 1U);
}

class FrontDoorPerClientTest : public FrontDoorTest {
 protected:
  FrontDoorPerClientTest() { limits_.max_connections_per_client = 3; }

  std::unique_ptr<HeldConnection> hold(const std::string& from = "127.0.0.1") {
    return std::make_unique<HeldConnection>(port_, server_.ca.certificate_pem(), from);
  }
  std::uint64_t refused() const {
    return front_door_->counters().connections_refused_per_client.value();
  }
};

TEST_F(FrontDoorPerClientTest, OneConnectionPastTheLimitIsClosedAndCountedWhileTheOthersServe) {
  std::vector<std::unique_ptr<HeldConnection>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(hold());
    ASSERT_EQ(held.back()->greeting(), "ok\n") << "connection " << i;
  }
  auto fourth = hold();
  EXPECT_NE(fourth->greeting().find("handshake failed"), std::string::npos) << fourth->greeting();
  EXPECT_EQ(refused(), 1U);
  // Closed before the handshake: the TLS counters never saw it.
  EXPECT_EQ(front_door_->counters().handshakes_completed.value(), 3U);
  EXPECT_EQ(front_door_->counters().handshakes_failed.value(), 0U);
  for (auto& connection : held) EXPECT_EQ(connection->echo("ping"), "ping");
  EXPECT_EQ(front_door_->open_connections(), 3U);
}

TEST_F(FrontDoorPerClientTest, ClosingAConnectionLetsANewOneIn) {
  std::vector<std::unique_ptr<HeldConnection>> held;
  for (int i = 0; i < 3; ++i) held.push_back(hold());
  EXPECT_NE(hold()->greeting().find("handshake failed"), std::string::npos);
  held.pop_back();
  // The client's place is given back before the connection leaves open_connections().
  ASSERT_TRUE(core::testing::eventually([this] { return front_door_->open_connections() == 2; }));
  held.push_back(hold());
  EXPECT_EQ(held.back()->greeting(), "ok\n");
  EXPECT_EQ(held.back()->echo("x"), "x");
  EXPECT_EQ(refused(), 1U);
}

TEST_F(FrontDoorPerClientTest, AnotherAddressHasItsOwnLimit) {
  std::vector<std::unique_ptr<HeldConnection>> held;
  for (int i = 0; i < 3; ++i) held.push_back(hold("127.0.0.1"));
  for (int i = 0; i < 3; ++i) {
    held.push_back(hold("127.0.0.2"));
    EXPECT_EQ(held.back()->greeting(), "ok\n") << "connection " << i << " from 127.0.0.2";
  }
  EXPECT_EQ(refused(), 0U);
  EXPECT_NE(hold("127.0.0.2")->greeting().find("handshake failed"), std::string::npos);
  EXPECT_NE(hold("127.0.0.1")->greeting().find("handshake failed"), std::string::npos);
  EXPECT_EQ(refused(), 2U);
  EXPECT_EQ(front_door_->open_connections(), 6U);
}

class FrontDoorNoPerClientLimitTest : public FrontDoorPerClientTest {
 protected:
  FrontDoorNoPerClientLimitTest() { limits_.max_connections_per_client = 0; }
};

TEST_F(FrontDoorNoPerClientLimitTest, ZeroMeansNoPerClientLimit) {
  std::vector<std::unique_ptr<HeldConnection>> held;
  for (int i = 0; i < 8; ++i) {
    held.push_back(hold());
    EXPECT_EQ(held.back()->greeting(), "ok\n") << "connection " << i;
  }
  EXPECT_EQ(refused(), 0U);
  EXPECT_EQ(front_door_->open_connections(), 8U);
}

}  // namespace
}  // namespace pullthrough::proxy
