#include "proxy/front_door.hpp"

#include "core/asio.hpp"

#include <future>
#include <set>
#include <thread>

#include <boost/asio/ssl.hpp>
#include <gtest/gtest.h>
#include <openssl/x509_vfy.h>

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
  std::thread::id thread;  // that ran the handler
};

struct Untrusted {
  std::string peer;
  std::string alert;
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
    config_ = *config::load_string("proxy: {listen: [\"" + listen_ +
                                       "\"], allow: [\"127.0.0.0/8\"]}\n"
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
            seen_.push_back(Seen{connection.registry->host, connection.server_name,
                                 std::this_thread::get_id()});
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
        limits_,
        [this](const core::Endpoint& peer, CertificateAlert alert) {
          std::lock_guard lock(mutex_);
          untrusted_.push_back(Untrusted{peer.to_string(), std::string(to_string(alert))});
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
  // Plain HTTP where a ClientHello belongs; returns once the front door has closed the connection.
  void send_http_instead_of_tls() {
    asio::io_context client;
    tcp::socket socket(client);
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    asio::write(socket, asio::buffer(std::string("GET / HTTP/1.1\r\n\r\n")));
    char buffer[256];
    boost::system::error_code ec;
    while (!ec) socket.read_some(asio::buffer(buffer), ec);
  }

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

  // A client from `from` (a loopback address) that verifies the server's certificate without
  // the test CA: OpenSSL's own check against an empty trust store, or one that fails with
  // `verify_error` when that is set. Returns the client's end of the connection, as the server
  // sees it.
  std::string untrusting_client(int max_version, int verify_error = X509_V_OK,
                                const std::string& from = "127.0.0.2") {
    asio::io_context client_io;
    ssl::context client_tls(ssl::context::tls_client);
    SSL_CTX_set_max_proto_version(client_tls.native_handle(), max_version);
    ssl::stream<tcp::socket> stream(client_io, client_tls);
    SSL_set_tlsext_host_name(stream.native_handle(), "quay.io");
    stream.set_verify_mode(ssl::verify_peer);
    if (verify_error != X509_V_OK) {
      stream.set_verify_callback([verify_error](bool, ssl::verify_context& context) {
        X509_STORE_CTX_set_error(context.native_handle(), verify_error);
        return false;
      });
    }
    auto& socket = stream.next_layer();
    socket.open(tcp::v4());
    socket.bind(tcp::endpoint(asio::ip::make_address(from), 0));
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    auto local = socket.local_endpoint();
    boost::system::error_code ec;
    stream.handshake(ssl::stream_base::client, ec);
    EXPECT_TRUE(ec) << "the client trusted the certificate";
    // Until the front door closes: a client gone first with the rest of the server's flight
    // unread would reset the connection.
    char buffer[4096];
    boost::system::error_code read_ec;
    while (!read_ec) socket.read_some(asio::buffer(buffer), read_ec);
    return core::Endpoint{local.address(), local.port()}.to_string();
  }

  std::vector<Untrusted> untrusted() {
    std::lock_guard lock(mutex_);
    return untrusted_;
  }

  std::string listen_ = "127.0.0.1:0";
  certs::testing::ScratchDir dir_;
  config::Config config_;
  testing::TestServerTls server_{config_, dir_.path()};
  asio::io_context io_;
  FrontDoorLimits limits_ = [] {
    FrontDoorLimits limits;
    limits.event_loops = 2;
    return limits;
  }();
  std::unique_ptr<TlsFrontDoor> front_door_;
  std::thread worker_;
  std::uint16_t port_ = 0;
  std::mutex mutex_;
  std::vector<Seen> seen_;
  std::vector<Untrusted> untrusted_;
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

TEST_F(FrontDoorTest, ConnectionsAreServedOnTheDoorsOwnEventLoopsInTurn) {
  for (int i = 0; i < 4; ++i) ASSERT_EQ(connect("quay.io", "quay.io"), "ok\n");
  std::lock_guard lock(mutex_);
  ASSERT_EQ(seen_.size(), 4U);
  std::set<std::thread::id> threads;
  for (const auto& seen : seen_) threads.insert(seen.thread);
  // Two loops (limits_), neither of them the thread that runs the listener's io_context.
  EXPECT_EQ(threads.size(), 2U);
  EXPECT_EQ(threads.count(worker_.get_id()), 0U);
  EXPECT_NE(seen_[0].thread, seen_[1].thread);
  EXPECT_EQ(seen_[0].thread, seen_[2].thread);
  EXPECT_EQ(seen_[1].thread, seen_[3].thread);
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
  send_http_instead_of_tls();
  EXPECT_EQ(front_door_->counters().handshakes_failed.value(), 1U);
}

TEST_F(FrontDoorTest, ClientWithoutTheCaIsReportedWithItsAddressAndAlert) {
  const std::string tls13 = untrusting_client(TLS1_3_VERSION);
  const std::string tls12 = untrusting_client(TLS1_2_VERSION);
  ASSERT_TRUE(core::testing::eventually([this] { return untrusted().size() == 2; }));
  auto reported = untrusted();
  EXPECT_EQ(reported[0].peer, tls13);
  EXPECT_EQ(reported[0].alert, "unknown_ca");
  EXPECT_EQ(reported[1].peer, tls12);
  EXPECT_EQ(reported[1].alert, "unknown_ca");
  EXPECT_TRUE(tls13.starts_with("127.0.0.2:")) << tls13;
  const auto& counters = front_door_->counters();
  EXPECT_EQ(counters.handshakes_untrusted_unknown_ca.value(), 2U);
  EXPECT_EQ(counters.handshakes_untrusted_bad_certificate.value(), 0U);
  EXPECT_EQ(counters.handshakes_untrusted_certificate_unknown.value(), 0U);
  EXPECT_EQ(counters.handshakes_failed.value(), 2U);
  EXPECT_EQ(counters.handshakes_completed.value(), 0U);
  std::lock_guard lock(mutex_);
  EXPECT_TRUE(seen_.empty());
}

// What Go's crypto/tls (bad_certificate) and Java (certificate_unknown) send for an unknown
// authority, made here by failing OpenSSL's verification with errors that map to those alerts.
TEST_F(FrontDoorTest, BadCertificateAndCertificateUnknownAreReportedAndCountedApart) {
  const std::string go_like = untrusting_client(TLS1_3_VERSION, X509_V_ERR_CERT_REJECTED);
  const std::string java_like =
      untrusting_client(TLS1_2_VERSION, X509_V_ERR_KEYUSAGE_NO_CERTSIGN, "127.0.0.3");
  ASSERT_TRUE(core::testing::eventually([this] { return untrusted().size() == 2; }));
  auto reported = untrusted();
  EXPECT_EQ(reported[0].peer, go_like);
  EXPECT_EQ(reported[0].alert, "bad_certificate");
  EXPECT_EQ(reported[1].peer, java_like);
  EXPECT_EQ(reported[1].alert, "certificate_unknown");
  const auto& counters = front_door_->counters();
  EXPECT_EQ(counters.handshakes_untrusted_bad_certificate.value(), 1U);
  EXPECT_EQ(counters.handshakes_untrusted_certificate_unknown.value(), 1U);
  EXPECT_EQ(counters.handshakes_untrusted_unknown_ca.value(), 0U);
  EXPECT_EQ(counters.handshakes_failed.value(), 2U);
}

// Only a client's verdict on the certificate reports it: a trusting client, a name the front door
// refuses, a client's alert about something else and bytes that are not TLS do not.
TEST_F(FrontDoorTest, FailuresThatAreNotAboutTrustAreNotReported) {
  EXPECT_EQ(connect("quay.io", "quay.io"), "ok\n");
  EXPECT_NE(connect("example.com", "example.com").find("handshake failed"), std::string::npos);
  EXPECT_NE(connect("", "quay.io").find("handshake failed"), std::string::npos);
  untrusting_client(TLS1_3_VERSION, X509_V_ERR_APPLICATION_VERIFICATION);  // handshake_failure
  untrusting_client(TLS1_2_VERSION, X509_V_ERR_CERT_HAS_EXPIRED);          // certificate_expired
  send_http_instead_of_tls();
  // Each failed handshake is over once its connection is.
  ASSERT_TRUE(core::testing::eventually([this] {
    return front_door_->counters().handshakes_failed.value() == 5 &&
           front_door_->open_connections() == 0;
  }));
  EXPECT_TRUE(untrusted().empty()) << untrusted().front().alert;
  const auto& counters = front_door_->counters();
  EXPECT_EQ(counters.handshakes_completed.value(), 1U);
  EXPECT_EQ(counters.handshakes_untrusted_bad_certificate.value(), 0U);
  EXPECT_EQ(counters.handshakes_untrusted_certificate_unknown.value(), 0U);
  EXPECT_EQ(counters.handshakes_untrusted_unknown_ca.value(), 0U);
}

// A front door on an IPv6 socket sees an IPv4 client as ::ffff:a.b.c.d; the report names the
// IPv4 address, as the allow list and the DNS side know it.
class FrontDoorMappedTest : public FrontDoorTest {
 protected:
  FrontDoorMappedTest() { listen_ = "[::ffff:127.0.0.1]:0"; }
};

TEST_F(FrontDoorMappedTest, IpV4ClientOfAnIpV6SocketIsReportedByItsIpV4Address) {
  const std::string client = untrusting_client(TLS1_3_VERSION);
  ASSERT_TRUE(core::testing::eventually([this] { return untrusted().size() == 1; }));
  EXPECT_EQ(untrusted()[0].peer, client);
  EXPECT_TRUE(client.starts_with("127.0.0.2:")) << client;
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
