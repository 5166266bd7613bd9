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

// A front door on 127.0.0.1:0 whose handler records what it was handed and answers "ok\n".
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
        io_, config_, server_.tls, [this](TlsConnection connection) -> asio::awaitable<void> {
          {
            std::lock_guard lock(mutex_);
            seen_.push_back(Seen{connection.registry->host, connection.server_name});
          }
          boost::system::error_code ec;
          co_await asio::async_write(*connection.stream, asio::buffer("ok\n", 3),
                                     asio::redirect_error(asio::use_awaitable, ec));
          co_await connection.stream->async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
        });
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

}  // namespace
}  // namespace pullthrough::proxy
